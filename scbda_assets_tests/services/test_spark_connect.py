"""The embedded Spark Connect server (started by the suite's fixture from pyspark's own sbin script) answers SQL,
and the resource config points runs at it."""

from scbda_assets.resources import spark_config


def test_connect_server_runs_sql(spark):
    rows = spark.sql("SELECT id % 3 AS k, count(*) AS n FROM range(30) GROUP BY k ORDER BY k").collect()
    assert [(r.k, r.n) for r in rows] == [(0, 10), (1, 10), (2, 10)]
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_resource_config_uses_connect_when_configured(spark_settings, settings):
    assert spark_config(spark_settings) == {"spark.remote": spark_settings.spark_remote}
    local = spark_config(settings)  # SCBDA_SPARK_REMOTE=local: in-process session, same tuning
    assert local["spark.master"] == "local[2]" and local["spark.sql.shuffle.partitions"] == "4"
