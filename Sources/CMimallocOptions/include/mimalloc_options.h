#ifndef TOKENCTL_MIMALLOC_OPTIONS_H
#define TOKENCTL_MIMALLOC_OPTIONS_H
// The tokenctl executable's allocator options, set by a constructor before main (see the .c):
// nothing to call.
#endif
