//! One component per file; views read the shared [`crate::state::Live`] context.

pub(crate) mod agent_card;
pub(crate) mod agent_view;
pub mod app;
pub(crate) mod clear_dialog;
pub(crate) mod conn_indicator;
pub(crate) mod events;
pub(crate) mod fleet;
pub(crate) mod line_chart;
pub(crate) mod login;
pub(crate) mod processes;
pub(crate) mod sparkline;

#[cfg(test)]
mod tests;
