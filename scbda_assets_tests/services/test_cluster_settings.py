"""What `scbda services up --cluster` prints and remembers, without starting anything (the cluster lane starts it)."""

from __future__ import annotations

import subprocess

import pymongo
from click.testing import CliRunner

from scbda_assets import cli
from scbda_assets.services.cluster import MONGO_OPTIONS, ClusterPorts
from scbda_assets.settings import Settings


def test_replica_set_uri_parses_and_asks_for_majority_retryable_reads_and_writes(tmp_path):
    ports = ClusterPorts.load_or_allocate(Settings.from_env({"SCBDA_HOME": str(tmp_path)}))
    uri = ports.mongo_uri
    Settings.from_env({"SCBDA_MONGO_URI": uri})  # valid for the settings parser
    options = pymongo.uri_parser.parse_uri(uri)["options"]
    assert options["replicaSet"] == "scbda-rs" and options["w"] == "majority"
    assert options["retryWrites"] is True and options["readConcernLevel"] == "majority"
    assert len(set(ports.mongo)) == 3 and "&" in MONGO_OPTIONS


def test_ports_are_remembered_so_the_replica_set_keeps_its_member_addresses(tmp_path):
    settings = Settings.from_env({"SCBDA_HOME": str(tmp_path)})
    assert ClusterPorts.recorded(settings) is None
    first = ClusterPorts.load_or_allocate(settings)
    assert ClusterPorts.recorded(settings) == first == ClusterPorts.load_or_allocate(settings)


def test_settings_lines_survive_shell_evaluation():
    uri = "mongodb://127.0.0.1:1,127.0.0.1:2/?replicaSet=scbda-rs&w=majority"
    plain = "redis://127.0.0.1:6389/0"
    script = f"set -a\nA={cli._shell_value(uri)}\nB={cli._shell_value(plain)}\nprintf '%s\\n' \"$A\" \"$B\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={}).stdout.splitlines()
    assert out == [uri, plain]
    assert cli._shell_value(plain) == plain  # plain values are printed as they are


def test_a_primary_stepping_down_mid_command_is_one_line_exit_3():
    @cli.main.command("fake-stepdown", hidden=True)
    @cli._one_line_errors
    def fake_stepdown():
        raise pymongo.errors.NotPrimaryError("not primary, full error: {'code': 10107}", {"code": 10107})

    try:
        result = CliRunner().invoke(cli.main, ["fake-stepdown"])
    finally:
        cli.main.commands.pop("fake-stepdown", None)
    assert result.exit_code == 3
    assert result.output == "scbda: error: MongoDB unavailable: not primary; run the command again\n"
