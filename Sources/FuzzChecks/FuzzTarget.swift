import Foundation

/// The glue of a fuzz executable. Built with `-sanitize=fuzzer` and `-DFUZZING` (scripts/fuzz.sh),
/// `main` hands the target to libFuzzer's driver; built normally, it runs the check on the files
/// or directories given as arguments (to reproduce a crash with a readable message).
public enum FuzzTarget {
    public typealias Check = (UnsafeRawBufferPointer) throws -> Void
    public typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

    /// `callback` must be `{ FuzzTarget.fuzz($0, $1, check) }` for the same check (a C function
    /// pointer cannot capture it).
    public static func main(_ check: Check, libFuzzer callback: Callback) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
        #else
        exit(replay(check))
        #endif
    }

    /// One libFuzzer input: a broken property traps, so libFuzzer saves the input.
    public static func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int, _ check: Check) -> CInt {
        do {
            try check(UnsafeRawBufferPointer(start: data, count: size))
        } catch {
            fatalError(String(describing: error))
        }
        return 0
    }

    /// Runs `check` on every file named (directories: every file inside); exit status 1 on a failure.
    public static func replay(_ check: Check, arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int32 {
        var failures = 0
        var count = 0
        for path in arguments.flatMap(files(at:)) {
            count += 1
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): cannot be read")
                failures += 1
                continue
            }
            do {
                try data.withUnsafeBytes { try check($0) }
            } catch {
                print("\(path): \(error)")
                failures += 1
            }
        }
        print("\(count) inputs, \(failures) failures")
        return failures == 0 ? 0 : 1
    }

    /// The file itself, or the regular files of a directory (sorted, not recursive).
    public static func files(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [path] }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { (path as NSString).appendingPathComponent($0) }
    }
}

#if FUZZING
/// libFuzzer's entry for programs that keep their own `main` (SwiftPM executables do).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: FuzzTarget.Callback) -> CInt
#endif
