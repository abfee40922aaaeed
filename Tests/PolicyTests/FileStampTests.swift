#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Policy
import Testing

@Suite struct FileStampTests {
    /// The trial's `touch -r plans.yaml plans.new; cp -p plans.new plans.yaml`: the same size and
    /// modification time, other contents. Only the change time tells.
    @Test("a file rewritten in place at the same size with its modification time put back is a change")
    func rewriteWithOldTimesIsSeen() throws {
        let path = NSTemporaryDirectory() + "tokenctl-stamp-\(UUID().uuidString).yaml"
        defer { unlink(path) }
        try "requests_per_minute: 208\n".write(toFile: path, atomically: false, encoding: .utf8)
        var before = stat()
        #expect(stat(path, &before) == 0)
        let stamp = FileStamp.of(path)
        usleep(20_000)  // the change time's clock ticks every few ms
        try "requests_per_minute: 209\n".write(toFile: path, atomically: false, encoding: .utf8)
        var times = [before.st_atim, before.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        var after = stat()
        #expect(stat(path, &after) == 0)
        #expect(after.st_ino == before.st_ino && after.st_size == before.st_size)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(FileStamp.of(path) != stamp)
        #expect(FileStamp.of(path) == FileStamp.of(path))
        #expect(FileStamp.of(path + ".absent") == FileStamp.unreadable)
    }
}
