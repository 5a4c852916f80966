// Runs once, on the first start with an empty data volume (the official image runs
// /docker-entrypoint-initdb.d/*.js as the root user). The pipeline connects as this least-privilege user,
// never as root. Credentials come from the container environment, never from this file.
const appDb = process.env.MONGO_APP_DB;
db.getSiblingDB("admin").createUser({
  user: process.env.MONGO_APP_USER,
  pwd: process.env.MONGO_APP_PASSWORD,
  // readWrite covers inserts, deletes, index creation, aggregation and dbStats (the archive sensor).
  roles: [{ role: "readWrite", db: appDb }],
});
