"""The one-line failures of the HDFS client and service, from the texts the NameNode, hdfs-native and Spark give
(the live lane, test_archive_on_hdfs.py, shows them end to end)."""

from __future__ import annotations

import pytest

from scbda_assets.archive.hdfs_client import _explained, failure_line, hdfs_filesystem
from scbda_assets.errors import ServiceUnavailable
from scbda_assets.services.hdfs import hadoop_classpath
from scbda_assets.services.process import ServiceError

NAMENODE = "hdfs://127.0.0.1:9000"


def test_safe_mode_is_a_service_unavailable_line():
    raised = RuntimeError('RPCError("org.apache.hadoop.hdfs.server.namenode.SafeModeException", "Cannot create '
                          'file/x. Name node is in safe mode.\n\tat org.apache.hadoop...")')
    explained = _explained(NAMENODE, raised)
    assert isinstance(explained, ServiceUnavailable)
    assert "safe mode" in str(explained) and "\n" not in str(explained)


def test_connection_refused_is_unreachable_and_file_errors_pass_through():
    assert "unreachable" in str(_explained(NAMENODE, OSError("Connection refused (os error 111)")))
    missing = FileNotFoundError("/x")
    assert _explained(NAMENODE, missing) is missing
    exists = _explained(NAMENODE, RuntimeError('RPCError("org.apache.hadoop.fs.FileAlreadyExistsException", "/x")'))
    assert isinstance(exists, FileExistsError)


def test_no_datanode_to_write_to_is_a_service_unavailable_line():
    explained = _explained(NAMENODE, RuntimeError('DataTransferError("All nodes failed for write")'))
    assert isinstance(explained, ServiceUnavailable) and "All nodes failed for write" in str(explained)
    refused = _explained(NAMENODE, RuntimeError('RPCError("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", '
                                                '"`/x is non empty\': Directory is not empty")'))
    assert type(refused) is OSError  # a request HDFS refuses is the caller's error, not HDFS failing


def test_a_spark_job_failing_on_hdfs_is_one_line_naming_the_cause():
    text = ("[TASK_WRITE_FAILED] Task failed while writing rows to hdfs://127.0.0.1:5/a. SQLSTATE: 58030\n"
            "org.apache.hadoop.ipc.RemoteException(java.io.IOException): File /a/part-0 could only be written to 0 "
            "of the 1 minReplication nodes.\n\tat org.apache.hadoop.hdfs.DataStreamer.run(DataStreamer.java:752)")
    line = failure_line(RuntimeError(text))
    assert line.startswith("HDFS failed during the command: File /a/part-0 could only be written to 0")
    assert "\n" not in line
    assert failure_line(ValueError("a bug, not HDFS")) is None


def test_only_hdfs_uris_with_a_namenode_are_accepted():
    with pytest.raises(ValueError, match="expected hdfs://host:port/path"):
        hdfs_filesystem("hdfs:///no-namenode")


def test_missing_hadoop_jars_name_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setenv("SCBDA_HADOOP_CLASSPATH", str(tmp_path / "classpath.txt"))
    with pytest.raises(ServiceError, match="make hadoop"):
        hadoop_classpath()
    (tmp_path / "classpath.txt").write_text(str(tmp_path / "gone.jar"))
    with pytest.raises(ServiceError, match="gone.jar missing"):
        hadoop_classpath()
