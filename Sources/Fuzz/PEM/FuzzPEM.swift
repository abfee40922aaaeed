import FuzzChecks

/// A libFuzzer target under `scripts/fuzz.sh`; a corpus replayer when built normally.
@main
enum FuzzPEM {
    static func main() {
        FuzzTarget.main(PEMBlockCheck.run, libFuzzer: { FuzzTarget.fuzz($0, $1, PEMBlockCheck.run) })
    }
}

#if FUZZING
// libFuzzer's runtime is linked whole and its own main refers to this symbol, even though our
// main above drives the fuzzer through LLVMFuzzerRunDriver.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.fuzz(data, size, PEMBlockCheck.run)
}
#endif
