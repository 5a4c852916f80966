"""The docker stack's app user may write every database the code writes (docker/mongo-init/create-app-user.js).

The needed databases are derived from the code: every place scbda_assets selects a MongoDB database is found by a
scan of its source, and each must be one whose name this test can compute from the code's own helpers (a new
database selection fails here until it is granted). The grants are then tried for real: a user created with the
roles the init script grants writes the facts and the history layer on the suite's mongod.
"""

from __future__ import annotations

import re
import uuid

import pymongo
import pytest

from scbda_assets.history.store import ensure_indexes, history_database, set_state
from scbda_assets.settings import Settings
from scbda_assets_tests.docker import compose_model

INIT_SCRIPT = compose_model.DOCKER_DIR / "mongo-init" / "create-app-user.js"
SOURCE = compose_model.REPO_ROOT / "scbda_assets"

# A database selection: client[...], client()[...], .get_database(...), .get_default_database(...).
_SELECTION = re.compile(r"client(?:\(\))?\[(?P<expr>[^\]]+)\]|\.get_(?:default_)?database\((?P<call>[^)]*)\)")
# Every expression the code selects a database with -> the database it names (from the code's own helpers).
# ``db.name``: the same database re-opened with other options (archive/lease.py's journaled handle of the app db).
_APP_DB = ("settings.mongo_db", "self.settings.mongo_db", "self.database_name", "db.name")
_HISTORY_DB = ('f"{db.name}_history"',)


def _databases_the_code_writes(app_db: str) -> tuple[set[str], list[str]]:
    """(databases, selections nobody accounted for as file:line: expression)."""
    offline = pymongo.MongoClient("mongodb://127.0.0.1:1", connect=False)
    names, unknown = set(), []
    for path in sorted(SOURCE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in _SELECTION.finditer(line):
                expr = (match["expr"] or match["call"] or "").split(",")[0].strip()  # the name, not the options
                if expr in _APP_DB:
                    names.add(app_db)
                elif expr in _HISTORY_DB:
                    names.add(history_database(offline[app_db]).name)
                else:
                    unknown.append(f"{path.relative_to(compose_model.REPO_ROOT)}:{number}: {expr}")
    offline.close()
    return names, unknown


def _granted_databases(script: str, app_db: str) -> set[str]:
    """The readWrite databases create-app-user.js grants when MONGO_APP_DB is ``app_db``."""
    def value(token: str) -> str:
        token = token.strip()
        if token == "appDb":
            return app_db
        concatenated = re.fullmatch(r'appDb\s*\+\s*"([^"]*)"', token)
        assert concatenated, f"create-app-user.js: cannot read the database expression {token!r}"
        return app_db + concatenated[1]

    listed = re.search(r"const appDatabases = \[([^\]]*)\];", script)
    grants = set()
    for target in re.findall(r'role:\s*"readWrite",\s*db:\s*(\w+)', script):
        if target == "name":  # appDatabases.map((name) => ({ role: "readWrite", db: name }))
            assert listed and "appDatabases.map((name)" in script, "create-app-user.js: roles from an unknown list"
            grants |= {value(token) for token in listed[1].split(",")}
        else:
            grants.add(value(target))
    return grants


def test_every_database_selection_in_the_code_is_accounted_for():
    names, unknown = _databases_the_code_writes("supply_chain")
    assert not unknown, f"a database selection this test cannot name (grant it in create-app-user.js): {unknown}"
    assert names == {"supply_chain", "supply_chain_history"}


def test_init_script_grants_every_database_the_code_writes(services):
    app_db = compose_model.environment(services["mongodb"])["MONGO_APP_DB"]
    assert app_db == Settings.from_env({}).mongo_db
    needed, _ = _databases_the_code_writes(app_db)
    assert _granted_databases(INIT_SCRIPT.read_text(), app_db) == needed


def test_a_user_with_the_scripts_grants_writes_the_facts_and_the_history(mongo_server):
    """On a real mongod with authentication: what the history layer does (indexes, state) succeeds as that user."""
    app_db = f"grants_{uuid.uuid4().hex[:8]}"
    user, password = f"app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    roles = [{"role": "readWrite", "db": name} for name in sorted(_granted_databases(INIT_SCRIPT.read_text(), app_db))]
    with pymongo.MongoClient(mongo_server) as root:
        root.admin.command("createUser", user, pwd=password, roles=roles)
        try:
            host = root.address
            uri = f"mongodb://{user}:{password}@{host[0]}:{host[1]}/?authSource=admin&directConnection=true"
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as app:
                db = app[app_db]
                db["orders_fact"].insert_one({"order_id": "ORD-1"})
                db.command("dbStats")
                history = history_database(db)
                ensure_indexes(history)
                set_state(history, "watermark", {"$set": {"at": 1}})
                assert history["state"].count_documents({}) == 1
                with pytest.raises(pymongo.errors.OperationFailure, match="not authorized"):
                    app[f"{app_db}_other"]["x"].insert_one({})  # least privilege: nothing else
        finally:
            root.admin.command("dropUser", user)
            root.drop_database(app_db)
            root.drop_database(f"{app_db}_history")
