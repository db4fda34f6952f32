//! Integration tests over HTTP and WebSocket: the real application on a free port and a real
//! SQLite file (two replicas on one PostgreSQL for `replicas`), in this process through the
//! shared harness; the binary itself where the process is what is tested (SIGKILL, SIGTERM).

mod helpers;

mod alerts;
mod alerts_email;
mod dashboard_door;
mod durability;
mod events;
mod hostile;
mod hostile_alerts;
mod ingest;
mod live;
mod ops;
mod reads;
mod replicas;
mod security;
mod seed_clients;
mod sessions;
mod tls;
