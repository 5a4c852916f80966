"""The archive's own file operations on ``hdfs://``: a ``pyarrow.fs.PyFileSystem`` over ``hdfs-native`` (an HDFS
RPC client written in Rust; no JVM, no libhdfs in this process). Spark writes the Parquet bytes through its own
bundled Hadoop client; this is what lists, renames, deletes, writes manifests and reads files back.

HDFS semantics the archive relies on (storage.py's contract):
* ``move`` is the NameNode's rename without overwrite: one atomic RPC that fails with ``FileExistsError`` when the
  target exists, so two writers can never both publish the same name;
* a closed file is complete on the NameNode; the embedded DataNode also syncs a block to disk on close
  (``dfs.datanode.synconclose``, services/hdfs.py), so a closed file survives a DataNode crash;
* an unreachable NameNode, or one in safe mode (read-only after a restart until the DataNodes report), is one line:
  :class:`ServiceUnavailable`.
"""

from __future__ import annotations

import functools
import re
import urllib.parse

import pyarrow as pa
import pyarrow.fs as pafs

from scbda_assets.errors import ServiceUnavailable


def hdfs_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for an ``hdfs://host:port/path`` URI."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "hdfs" or not parsed.hostname:
        raise ValueError(f"{uri!r} is not an HDFS URI: expected hdfs://host:port/path")
    namenode = f"hdfs://{parsed.netloc}"
    return pafs.PyFileSystem(HdfsNativeHandler(namenode)), parsed.path or "/"


_REMOTE_EXCEPTION = re.compile(r'RPCError\("([\w.$]+)", "([^"\n]*)')


_USAGE_ERRORS = {"PathIsNotEmptyDirectoryException", "ParentNotDirectoryException", "PathIsNotDirectoryException",
                 "AccessControlException", "InvalidPathException"}  # the caller's mistake, not HDFS failing


def _explained(namenode: str, exc: Exception) -> Exception:
    """The exception the caller should see: FileNotFoundError/FileExistsError as they are; HDFS failing (NameNode
    unreachable or in safe mode, no DataNode to write to) as a one-line ServiceUnavailable; a request HDFS refuses
    as OSError with the NameNode's first line."""
    if isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)):
        return exc
    text = str(exc)
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    again = "check `scbda services status` (`scbda services up --hdfs` starts what is missing), then run the command again"
    remote = _REMOTE_EXCEPTION.search(text)
    if remote:
        name, message = remote.group(1).rsplit(".", 1)[-1].rstrip("$"), remote.group(2)[:200]
        if name == "SafeModeException":
            return ServiceUnavailable(
                f"HDFS NameNode {namenode} is in safe mode (read-only until its DataNodes report); run the command "
                "again in a minute, or `scbda services up --hdfs` to start a missing DataNode"
            )
        if name == "FileAlreadyExistsException":
            return FileExistsError(message)
        if name == "FileNotFoundException":
            return FileNotFoundError(message)
        if name in _USAGE_ERRORS:
            return OSError(f"HDFS {name}: {message}")
        return ServiceUnavailable(f"HDFS {namenode} failed: {name}: {message.rstrip('. ')}; {again}")
    if "connect" in text.lower() or "refused" in text.lower():
        return ServiceUnavailable(
            f"HDFS NameNode {namenode} unreachable ({first[:120]}); start it with "
            "`scbda services up --hdfs`, or check SCBDA_ARCHIVE_URI"
        )
    # The data path: no DataNode took a block (DataTransferError "All nodes failed for write"), a block unreadable.
    return ServiceUnavailable(f"HDFS {namenode} failed: {first}; {again}")


def _translating(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ServiceUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure leaves as one of the few kinds _explained names
            explained = _explained(self.namenode, exc)
            if explained is exc:
                raise
            raise explained from None

    return wrapper


class _TranslatedFile:
    """An hdfs-native reader or writer whose failures (a DataNode gone mid-write, found at close) are translated
    like the handler's own."""

    def __init__(self, namenode: str, inner):
        self.namenode, self._inner = namenode, inner

    def __getattr__(self, name):
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - see _translating
                explained = _explained(self.namenode, exc)
                if explained is exc:
                    raise
                raise explained from None

        return call


def failure_line(exc: BaseException) -> str | None:
    """One line for a failure of HDFS seen through another client (Spark's Hadoop client reports it inside a job
    error, with a Java stack trace), or None when ``exc`` names no HDFS failure."""
    text = str(exc)
    if "org.apache.hadoop" not in text and "hdfs://" not in text:
        return None
    causes = re.findall(r"(?:org\.apache\.hadoop[\w.$]*|java\.(?:io|net)\.\w+)(?:\([\w.]+\))?: ([^\n]+)", text)
    cause = causes[-1] if causes else text.strip().splitlines()[0]
    cause = re.sub(r"(?:/[^\s/]+){3,}/([^\s/]+)", r".../\1", cause)[:240].rstrip(". ")  # long paths: the file name
    return f"HDFS failed during the command: {cause}; check `scbda services status`, then run the command again"


class HdfsNativeHandler(pafs.FileSystemHandler):
    """pyarrow's filesystem interface, each call one or a few NameNode RPCs through ``hdfs_native.Client``."""

    def __init__(self, namenode: str):
        from hdfs_native import Client

        self.namenode = namenode
        self.client = Client(namenode)

    def __eq__(self, other):
        return isinstance(other, HdfsNativeHandler) and other.namenode == self.namenode

    def __ne__(self, other):
        return not self == other

    def get_type_name(self) -> str:
        return "hdfs-native"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other) -> bool:
        return self == other

    @staticmethod
    def _info(path: str, status) -> pafs.FileInfo:
        kind = pafs.FileType.Directory if status.isdir else pafs.FileType.File
        return pafs.FileInfo(path, kind, size=None if status.isdir else status.length,
                             mtime_ns=status.modification_time * 1_000_000)

    @_translating
    def get_file_info(self, paths):
        infos = []
        for path in paths:
            try:
                infos.append(self._info(path, self.client.get_file_info(path)))
            except FileNotFoundError:
                infos.append(pafs.FileInfo(path, pafs.FileType.NotFound))
        return infos

    @_translating
    def get_file_info_selector(self, selector):
        base = selector.base_dir.rstrip("/") or "/"
        try:
            top = self.client.get_file_info(base)
        except FileNotFoundError:
            if selector.allow_not_found:
                return []
            raise
        if not top.isdir:
            raise NotADirectoryError(base)
        return [self._info(status.path, status) for status in self.client.list_status(base, selector.recursive)]

    @_translating
    def create_dir(self, path, recursive):
        self.client.mkdirs(path, create_parent=recursive)

    @_translating
    def delete_dir(self, path):
        self.client.delete(path, recursive=True)

    @_translating
    def delete_dir_contents(self, path, missing_dir_ok=False):
        try:
            children = list(self.client.list_status(path))
        except FileNotFoundError:
            if missing_dir_ok:
                return
            raise
        for child in children:
            self.client.delete(child.path, recursive=True)

    def delete_root_dir_contents(self):
        self.delete_dir_contents("/")

    @_translating
    def delete_file(self, path):
        status = self.client.get_file_info(path)  # FileNotFoundError, as pyarrow's filesystems raise
        if status.isdir:
            raise IsADirectoryError(path)
        self.client.delete(path, recursive=False)

    @_translating
    def move(self, src, dest):
        # The NameNode's rename2 without OVERWRITE: atomic, and FileExistsError when dest exists.
        self.client.rename(src, dest, overwrite=False)

    @_translating
    def copy_file(self, src, dest):
        with self.client.read(src) as reader, self._create(dest) as writer:
            while chunk := reader.read(8 << 20):
                writer.write(chunk)

    def _create(self, path):
        from hdfs_native import WriteOptions

        # pyarrow's open_output_stream truncates an existing file; the archive never relies on it (new names).
        return self.client.create(path, WriteOptions(overwrite=True, create_parent=True))

    def _file(self, inner, mode: str):
        return pa.PythonFile(_TranslatedFile(self.namenode, inner), mode=mode)

    @_translating
    def open_input_stream(self, path):
        return self._file(self.client.read(path), "r")

    @_translating
    def open_input_file(self, path):
        return self._file(self.client.read(path), "r")

    @_translating
    def open_output_stream(self, path, metadata):
        return self._file(self._create(path), "w")

    @_translating
    def open_append_stream(self, path, metadata):
        return self._file(self.client.append(path), "w")
