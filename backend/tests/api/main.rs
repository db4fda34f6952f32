//! Integration tests: the real `backend` binary, a real SQLite file, HTTP and WebSocket clients.

mod helpers;

mod durability;
mod events;
mod ingest;
mod live;
mod ops;
mod reads;
mod replicas;
mod security;
