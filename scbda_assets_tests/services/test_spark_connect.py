"""The embedded Spark Connect server (started by the suite's fixture from pyspark's own sbin script) answers SQL,
and the resource config points runs at it."""

from scbda_assets.resources import SparkResource, spark_config


def test_connect_server_runs_sql(spark):
    rows = spark.sql("SELECT id % 3 AS k, count(*) AS n FROM range(30) GROUP BY k ORDER BY k").collect()
    assert [(r.k, r.n) for r in rows] == [(0, 10), (1, 10), (2, 10)]
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_resource_config_uses_connect_when_configured(spark_settings, settings):
    assert spark_config(spark_settings) == {"spark.remote": spark_settings.spark_remote}
    local = spark_config(settings)  # SCBDA_SPARK_REMOTE=local: in-process session, same tuning
    assert local["spark.master"] == "local[2]" and local["spark.sql.shuffle.partitions"] == "4"


def test_resource_session_is_its_own_and_released_on_teardown(spark, spark_settings):
    """A run's Connect session is released on the server when the run ends (a session a minute would otherwise
    pile up in the server's heap), and the session the rest of the process shares stays usable."""
    import pytest
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    resource = SparkResource(spark_config=spark_config(spark_settings))
    session = resource.spark_session
    assert session is not spark and session.session_id != spark.session_id
    assert session.sql("SELECT 1 AS one").collect()[0].one == 1

    resource.teardown_after_execution(None)

    assert session.is_stopped
    # The server has dropped it: reattaching to that session id is refused.
    reattached = ConnectSession.builder.remote(f"{spark_settings.spark_remote}/;session_id={session.session_id}").create()
    with pytest.raises(SparkConnectGrpcException, match="SESSION_CLOSED"):
        reattached.sql("SELECT 1").collect()
    reattached.client.close()
    assert spark.sql("SELECT 2 AS two").collect()[0].two == 2
