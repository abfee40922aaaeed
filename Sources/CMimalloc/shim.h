// mimalloc, the allocator the tokenctl executable runs on: linking it replaces malloc and free
// for the whole process (libraries included). No logic lives here.
#ifndef TOKENCTL_CMIMALLOC_SHIM_H
#define TOKENCTL_CMIMALLOC_SHIM_H
#include <mimalloc.h>
#endif
