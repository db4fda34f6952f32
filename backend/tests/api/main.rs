//! Integration tests: the real `backend` binary on a real SQLite file (and, for the replica
//! test, two of them on one PostgreSQL), HTTP and WebSocket clients.

mod helpers;

mod durability;
mod events;
mod hostile;
mod ingest;
mod live;
mod ops;
mod reads;
mod replicas;
mod security;
mod seed_clients;
