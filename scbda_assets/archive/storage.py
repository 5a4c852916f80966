"""File operations on the archive root that Spark Connect cannot do (it has no JVM gateway): list, move, delete,
write a small file, make files durable. Spark itself reads and writes every Parquet byte; this client renames,
deletes, writes manifests and reads files back for verification.

The contract every backend keeps (the archive protocol relies on each line, docs/archive.md):

* ``move(source, target)`` never overwrites: it raises ``FileExistsError`` when ``target`` exists (HDFS rename
  semantics; on POSIX a hard link then unlink, since ``rename(2)`` replaces silently).
* ``write_new_text(relative, text)`` publishes a new small file durably: temporary name, flushed, renamed to a name
  that must not exist yet (``FileExistsError`` otherwise), folder flushed. A reader never sees half a file.
* ``make_durable(paths)`` returns once the files (and the folders that name them) are on stable storage: ``fsync``
  on ``file://``; on HDFS a closed file is durable (Spark closes every file it writes before its job ends).
* ``fs`` is a ``pyarrow.fs.FileSystem`` for pyarrow readers and writers.

``file://`` is pyarrow's LocalFileSystem; ``hdfs://`` is provided by ``hdfs_client.py`` (no native Hadoop library).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pyarrow.fs as pafs


class ArchiveStore:
    def __init__(self, root_uri: str):
        self.root_uri = root_uri.rstrip("/")
        self.fs, self.root_path = _filesystem(self.root_uri)
        self.root_path = self.root_path.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

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

    def create_dir(self, relative: str) -> None:
        self.fs.create_dir(self.path(relative), recursive=True)

    def move(self, source: str, target: str) -> None:
        """Rename a file; never replaces ``target`` (FileExistsError)."""
        self.create_dir(target.rsplit("/", 1)[0])
        if self.is_local:
            os.link(self.path(source), self.path(target))  # fails with FileExistsError, unlike rename(2)
            os.unlink(self.path(source))
            return
        if self.exists(target):
            raise FileExistsError(self.path(target))
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

    def make_durable(self, relatives: Iterable[str]) -> None:
        """Flush the files and the folders naming them to stable storage (see the module docstring)."""
        if not self.is_local:
            return
        folders = set()
        for relative in relatives:
            _fsync(self.path(relative))
            folders.add(self.path(relative).rsplit("/", 1)[0])
        for folder in sorted(folders):
            _fsync(folder)

    def write_new_text(self, relative: str, text: str) -> None:
        """Publish a small file under a name that does not exist yet, durably (FileExistsError if it does)."""
        temporary = f"{relative}.tmp"
        self.create_dir(relative.rsplit("/", 1)[0])
        with self.fs.open_output_stream(self.path(temporary)) as stream:
            stream.write(text.encode())
        self.make_durable([temporary])
        try:
            self.move(temporary, relative)
        finally:
            self.delete_file(temporary)
        self.make_durable([relative])

    def ensure_text(self, relative: str, text: str) -> None:
        """A marker file whose content never changes: written durably once, kept as it is when it exists."""
        if not self.exists(relative):
            self.write_new_text(relative, text)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("hdfs://"):
        from scbda_assets.archive.hdfs_client import hdfs_filesystem

        return hdfs_filesystem(uri)
    return pafs.FileSystem.from_uri(uri)


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
