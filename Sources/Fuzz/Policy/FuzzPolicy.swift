import FuzzChecks

/// A libFuzzer target under `scripts/fuzz.sh`; a corpus replayer when built normally.
@main
enum FuzzPolicy {
    static func main() {
        FuzzTarget.main(PolicyLoaderCheck.run, libFuzzer: { FuzzTarget.fuzz($0, $1, PolicyLoaderCheck.run) })
    }
}

#if FUZZING
// libFuzzer's runtime is linked whole and its own main refers to this symbol, even though our
// main above drives the fuzzer through LLVMFuzzerRunDriver.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.fuzz(data, size, PolicyLoaderCheck.run)
}
#endif
