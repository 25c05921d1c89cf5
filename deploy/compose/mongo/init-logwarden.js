// Runs once, when the mongo-data volume is empty (docker-entrypoint-initdb.d), as the root user.
// Creates logwarden's own user with readWrite on its database only; the services never use root.
// The password comes from MONGO_APP_PASSWORD (deploy/compose/.env); it must match the one in
// LOGWARDEN_MONGODB_URL, which compose builds from the same variable.
const password = process.env.MONGO_APP_PASSWORD;
if (!password) {
  throw new Error("MONGO_APP_PASSWORD is not set");
}
const logwarden = db.getSiblingDB("logwarden");
if (logwarden.getUser("logwarden") === null) {
  logwarden.createUser({
    user: "logwarden",
    pwd: password,
    roles: [{ role: "readWrite", db: "logwarden" }],
  });
}
