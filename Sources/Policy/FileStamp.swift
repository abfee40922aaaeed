#if canImport(Glibc)
import Glibc
#endif

/// A file's inode, size, modification and change times as one string ("unreadable" when it
/// cannot be stat'ed): what a policy watcher compares to tell that a file changed. `stat` alone:
/// Foundation's `attributesOfItem` also resolves the owner's and group's names, reading
/// /etc/passwd and /etc/group per file. The inode catches a file replaced by a rename; the change
/// time, one rewritten in place at the same size with its modification time put back
/// (`cp -p`, `rsync --inplace --times`), which no one can set.
public enum FileStamp {
    public static func of(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return unreadable }
        return "\(info.st_ino):\(info.st_size)@\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
            + "/\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
    }

    public static let unreadable = "unreadable"
}
