//! One component per file; views read the shared [`crate::state::Live`] context.

pub(crate) mod admin_only;
pub(crate) mod agent_card;
pub(crate) mod agent_view;
pub(crate) mod alert_strip;
pub(crate) mod alert_table;
pub(crate) mod alerts_view;
pub mod app;
pub(crate) mod change_status;
pub(crate) mod channel_editor;
pub(crate) mod choice;
pub(crate) mod clear_dialog;
pub(crate) mod conn_indicator;
pub(crate) mod drives;
pub(crate) mod events;
pub(crate) mod fleet;
pub(crate) mod host;
pub(crate) mod line_chart;
pub(crate) mod login;
pub(crate) mod machine_log;
pub(crate) mod processes;
pub(crate) mod rule_editor;
pub(crate) mod rule_form;
pub(crate) mod silence_editor;
pub(crate) mod sparkline;
pub(crate) mod text_field;

#[cfg(test)]
mod tests;
