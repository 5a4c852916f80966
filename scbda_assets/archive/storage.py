"""File operations on the archive root that Spark Connect cannot do (it has no JVM gateway): list, move, delete,
write a small file atomically. ``pyarrow.fs`` is the path-agnostic client: ``file://`` → LocalFileSystem,
``hdfs://`` → HadoopFileSystem (libhdfs; needs JAVA_HOME and the Hadoop CLASSPATH where the code runs).
Spark itself reads and writes every Parquet byte; this client only renames, deletes and writes manifests.
"""

from __future__ import annotations

import pyarrow.fs as pafs


class ArchiveStore:
    def __init__(self, root_uri: str):
        self.root_uri = root_uri.rstrip("/")
        self.fs, self.root_path = pafs.FileSystem.from_uri(self.root_uri)
        self.root_path = self.root_path.rstrip("/")

    def uri(self, relative: str) -> str:
        """What Spark is given (it speaks URIs through its Hadoop client)."""
        return f"{self.root_uri}/{relative}"

    def path(self, relative: str) -> str:
        return f"{self.root_path}/{relative}"

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def list_files(self, relative_dir: str, *, prefix: str = "", recursive: bool = False) -> list[str]:
        """Relative paths of the files under a folder whose name starts with ``prefix`` (none if it is missing)."""
        selector = pafs.FileSelector(self.path(relative_dir), allow_not_found=True, recursive=recursive)
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.startswith(prefix):
                found.append(info.path[len(self.root_path) + 1 :])
        return sorted(found)

    def list_dirs(self, relative_dir: str) -> list[str]:
        selector = pafs.FileSelector(self.path(relative_dir), allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.Directory)

    def size(self, relative: str) -> int:
        return self.fs.get_file_info(self.path(relative)).size or 0

    def move(self, source: str, target: str) -> None:
        self.fs.create_dir(self.path(target).rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(source), self.path(target))

    def delete_file(self, relative: str) -> None:
        try:
            self.fs.delete_file(self.path(relative))
        except FileNotFoundError:
            pass

    def delete_dir(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.delete_dir(self.path(relative))

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return stream.read().decode()

    def write_new_text(self, relative: str, text: str) -> None:
        """Write a file under a name that does not exist yet: temporary name, then rename (atomic on POSIX and
        HDFS when the target is new). A crash leaves at most a stray ``.tmp``; a reader never sees half a file."""
        target = self.path(relative)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        temporary = f"{target}.tmp"
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(text.encode())
        self.fs.move(temporary, target)

    def write_text_atomically(self, relative: str, text: str) -> None:
        """Write to a temporary name, then rename: a reader (or a crash) never sees half a file."""
        target = self.path(relative)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        temporary = f"{target}.tmp"
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(text.encode())
        try:
            self.fs.move(temporary, target)  # replaces atomically on POSIX
        except OSError:  # HDFS refuses to rename over an existing file
            self.fs.delete_file(target)
            self.fs.move(temporary, target)
