//! The alert tables, one migration in each store's list. Rules, channels and silences are kept
//! as the JSON the API took (their shape grows without a migration); alerts and the outbox are
//! columns, because rounds and deliveries filter and index them.

/// `{id}` is each store's own key column, `{seq}` its growing integer, `{big}` its 64-bit one.
const TEMPLATE: &str = "
    CREATE TABLE alert_rules (id {id}, body TEXT NOT NULL);
    CREATE TABLE alert_channels (id {id}, body TEXT NOT NULL);
    CREATE TABLE alert_silences (id {id}, body TEXT NOT NULL);
    CREATE TABLE alerts (
        id          {id},
        -- Grows with every change, in commit order (one round writes at a time), so that each
        -- replica can tell its live clients what changed since it last looked.
        seq         {big} NOT NULL,
        rule_id     {big} NOT NULL,
        rule_name   TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        severity    TEXT NOT NULL,
        state       TEXT NOT NULL,
        value       {float},
        threshold   {float},
        started_ms  {big} NOT NULL,
        fired_ms    {big},
        resolved_ms {big},
        notified_ms {big},
        clear_since_ms {big},
        summary     TEXT NOT NULL
    );
    -- One open alert per rule and agent, whatever the replicas do.
    CREATE UNIQUE INDEX alerts_open ON alerts(rule_id, agent_id) WHERE state <> 'resolved';
    CREATE INDEX alerts_by_seq ON alerts(seq);
    CREATE INDEX alerts_by_agent ON alerts(agent_id, id);
    CREATE TABLE alert_outbox (
        id           {id},
        alert_id     {big} NOT NULL,
        channel_id   {big} NOT NULL,
        kind         TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_ms   {big} NOT NULL,
        next_ms      {big} NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        delivered_ms {big},
        failed_ms    {big},
        last_error   TEXT
    );
    CREATE INDEX alert_outbox_due ON alert_outbox(next_ms) WHERE delivered_ms IS NULL AND failed_ms IS NULL;
    CREATE INDEX alert_outbox_by_alert ON alert_outbox(alert_id, id);
";

/// For SQLite's migration list.
pub(crate) fn sqlite() -> String {
    crate::storage::Dialect::Sqlite.render(TEMPLATE)
}

/// For PostgreSQL's migration list.
pub(crate) fn postgres() -> String {
    crate::storage::Dialect::Postgres.render(TEMPLATE) + "CREATE SEQUENCE alert_seq;"
}
