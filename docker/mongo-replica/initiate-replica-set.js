// mongo-rs-init (one-shot): initiate the replica set once, then wait until it has a primary and two
// secondaries. Credentials come from the container environment, never from this file.
const user = encodeURIComponent(process.env.MONGO_ROOT_USER);
const password = encodeURIComponent(process.env.MONGO_ROOT_PASSWORD);
const admin = connect(`mongodb://${user}:${password}@mongodb:27017/admin?directConnection=true&authSource=admin`);

const config = {
  _id: "scbda-rs",
  members: [
    // The first member holds the users (created on its first start): it is preferred as primary.
    { _id: 0, host: "mongodb:27017", priority: 2 },
    { _id: 1, host: "mongodb-2:27017", priority: 1 },
    { _id: 2, host: "mongodb-3:27017", priority: 1 },
  ],
  settings: { electionTimeoutMillis: 2000 },
};

try {
  admin.adminCommand({ replSetGetStatus: 1 });
  print("replica set scbda-rs already initiated");
} catch (error) {
  if (error.codeName !== "NotYetInitialized") throw error;
  admin.adminCommand({ replSetInitiate: config });
  print("replica set scbda-rs initiated");
}

const deadline = Date.now() + 120 * 1000;
while (Date.now() < deadline) {
  const states = admin.adminCommand({ replSetGetStatus: 1 }).members.map((m) => m.stateStr).sort();
  if (JSON.stringify(states) === JSON.stringify(["PRIMARY", "SECONDARY", "SECONDARY"])) {
    print("replica set scbda-rs ready: " + states.join(", "));
    quit(0);
  }
  sleep(1000);
}
print("replica set scbda-rs has no primary and two secondaries after 120 s");
quit(1);
