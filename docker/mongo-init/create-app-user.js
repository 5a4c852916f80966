// Runs once, on the first start with an empty data volume (the official image runs
// /docker-entrypoint-initdb.d/*.js as the root user). The pipeline connects as this least-privilege user,
// never as root. Credentials come from the container environment, never from this file.
const appDb = process.env.MONGO_APP_DB;
// Every database the pipeline writes: <db> (facts, dimensions, generator and archive state) and <db>_history
// (the history layer, scbda_assets/history/store.py). scbda_assets_tests/docker/test_mongo_grants.py derives
// this list from the code and compares.
const appDatabases = [appDb, appDb + "_history"];
db.getSiblingDB("admin").createUser({
  user: process.env.MONGO_APP_USER,
  pwd: process.env.MONGO_APP_PASSWORD,
  // readWrite covers inserts, deletes, index creation, aggregation and dbStats (the archive sensor).
  roles: appDatabases.map((name) => ({ role: "readWrite", db: name })),
});
