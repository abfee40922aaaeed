import ArgumentParser
import TokenctlCLI

// The commands live in TokenctlCLI (tests parse and run them there); this executable adds the
// allocator (CMimallocOptions, linked here only).
@main
extension TokenCtl {}
