//! Whole pages rendered with dioxus-ssr from fixed data and compared with snapshots.

use super::agent_view::AgentCharts;
use super::app::Route;
use super::clear_dialog::ClearDialog;
use super::events::EventTable;
use super::login::Login;
use super::processes::ProcessTable;
use super::rule_form::RuleFormView;
use crate::alert_forms::RuleForm;
use crate::auth::{self, Prompt, Session};
use crate::columns::Range;
use crate::fixtures::{NOW_MS, alert, live, metric, process, summary};
use crate::live::ConnState;
use crate::state::Live;
use crate::store::Store;
use dioxus::history::{History, MemoryHistory};
use dioxus::prelude::*;
use protocol::alerts::{Alert, AlertState, Metric, Severity};
use protocol::{AgentSummary, EventRow, Series};
use std::rc::Rc;

/// A fleet of three: one busy, one idle, one silent for two minutes, with recent readings.
fn store() -> Store {
    let mut store = Store::default();
    store.set_agents(
        vec![
            summary("pc-busy", 2.0, 0.93),
            summary("pc-idle", 3.0, 0.04),
            summary("pc-gone", 120.0, 0.5),
        ],
        NOW_MS,
    );
    let mut id = 0;
    let rows = (0..24).flat_map(|i| {
        let at = NOW_MS - f64::from(24 - i) * 5000.0;
        id += 2;
        [
            live(metric(id, "pc-busy", at, 0.5 + f64::from(i % 5) / 10.0)),
            live(process(id + 1, "pc-busy", at, 4242, "build.exe", 0.3)),
        ]
    });
    store.apply(rows.collect::<Vec<_>>());
    store
}

#[derive(Props, Clone, PartialEq)]
struct PageProps {
    path: String,
    conn: ConnState,
    store: Store,
}

#[allow(non_snake_case)]
fn Page(props: PageProps) -> Element {
    use_context_provider(|| {
        let live = Live::new(props.store.clone(), NOW_MS, 60);
        let mut conn = live.conn;
        conn.set(props.conn.clone());
        live
    });
    use_context_provider(|| {
        Rc::new(MemoryHistory::with_initial_path(&props.path)) as Rc<dyn History>
    });
    rsx! { Router::<Route> {} }
}

fn render_page(path: &str, conn: ConnState, store: Store) -> String {
    let mut dom = VirtualDom::new_with_props(Page, PageProps { path: path.into(), conn, store });
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

/// Wraps a closure as props, so elements with event handlers are built inside the runtime.
#[derive(Props, Clone)]
struct FnProps {
    render: Rc<dyn Fn() -> Element>,
}

impl PartialEq for FnProps {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.render, &other.render)
    }
}

fn rsx_fn(render: impl Fn() -> Element + 'static) -> FnProps {
    FnProps { render: Rc::new(render) }
}

#[allow(non_snake_case)]
fn FnRoot(props: FnProps) -> Element {
    (props.render)()
}

fn render_in_runtime(props: FnProps) -> String {
    let mut dom = VirtualDom::new_with_props(FnRoot, props);
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

/// Puts one element per line so that snapshot diffs read well.
fn pretty(html: String) -> String {
    html.replace("><", ">\n<")
}

#[test]
fn fleet_page() {
    insta::assert_snapshot!(pretty(render_page("/", ConnState::Live, store())));
}

#[test]
fn empty_fleet_explains_how_to_start_an_agent() {
    let mut empty = Store::default();
    empty.set_agents(Vec::new(), NOW_MS);
    let html = render_page("/", ConnState::Connecting, empty);
    assert!(html.contains("No agent has reported yet"), "{html}");
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn reconnecting_shows_when_the_next_try_is() {
    let conn = ConnState::Reconnecting { attempt: 3, retry_at_ms: NOW_MS + 3500.0 };
    let html = render_page("/", conn, store());
    assert!(html.contains("Disconnected, retry 3 in 4 s"), "{html}");
}

#[test]
fn agent_page_without_series_yet() {
    insta::assert_snapshot!(pretty(render_page("/agents/pc-busy", ConnState::Live, store())));
}

#[test]
fn events_page_shows_live_rows_newest_first() {
    let html = render_page("/events", ConnState::Live, store());
    let first = html.find(">49<").expect("newest row");
    let later = html.find(">48<").expect("next row");
    assert!(first < later);
    insta::assert_snapshot!(pretty(html));
}

fn seven_days() -> Series {
    let step = 302;
    let to = (NOW_MS / 1000.0) as i64;
    let from = to - 7 * 86_400;
    let t: Vec<i64> = (0..2000).map(|i| from + i * step).collect();
    let wave = |i: usize| Some(0.5 + 0.4 * (i as f64 / 40.0).sin());
    let n = t.len();
    Series {
        agent_id: "pc-busy".into(),
        from,
        to,
        step,
        cpu_avg: (0..n).map(wave).collect(),
        cpu_max: (0..n).map(|i| wave(i).map(|v| v + 0.05)).collect(),
        mem_used: vec![Some(8e9); n],
        mem_total: vec![Some(16e9); n],
        disk_used: vec![Some(2e11); n],
        disk_total: vec![Some(5e11); n],
        net_rx_bps: vec![Some(1e5); n],
        net_tx_bps: vec![None; n],
        t,
    }
}

#[test]
fn agent_charts_for_seven_days() {
    let agent = store().agents["pc-busy"].clone();
    let html = dioxus_ssr::render_element(rsx! {
        AgentCharts { agent, series: Some(seven_days()), range: Range::D7, now_ms: NOW_MS, offset_min: 0 }
    });
    // 2000 buckets are drawn as at most two points per horizontal step.
    let cpu_path = html.split("class=\"line cpu\" d=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(cpu_path.matches(['M', 'L']).count() <= 800, "{}", cpu_path.len());
    assert!(html.contains("11-05 12:00"), "axis starts seven days back");
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn process_table_sorts_by_cpu() {
    let rows = vec![
        process(1, "pc", NOW_MS, 10, "idle.exe", 0.01),
        process(2, "pc", NOW_MS, 11, "busy.exe", 0.61),
    ];
    let html = render_in_runtime(rsx_fn(move || {
        rsx! { ProcessTable { rows: rows.clone(), chosen: Some("busy.exe".to_owned()), on_choose: |_| {} } }
    }));
    assert!(html.find("busy.exe").unwrap() < html.find("idle.exe").unwrap());
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn event_table_formats_units_and_local_time() {
    let rows = vec![process(8, "pc", NOW_MS, 77, "sql.exe", 0.25), metric(7, "pc", NOW_MS, 0.5)];
    let html = dioxus_ssr::render_element(rsx! { EventTable { rows, offset_min: 60 } });
    assert!(html.contains("2025-11-12 13:00:00"), "{html}");
    assert!(html.contains("sql.exe (pid 77) · 77.0 MiB"), "{html}");
    assert!(html.contains("memory 12.0 GiB used of 16.0 GiB"), "{html}");
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn clear_dialog_is_a_labelled_modal_without_a_token_field() {
    let html = render_in_runtime(rsx_fn(|| {
        rsx! { ClearDialog { agent_id: Some("pc-1".to_owned()), on_close: |_| {} } }
    }));
    assert!(html.contains(r#"role="dialog""#) && html.contains(r#"aria-modal="true""#));
    assert!(html.contains("This deletes every event of pc-1."));
    assert!(!html.contains("<input") && !html.contains("token"), "{html}");
    insta::assert_snapshot!(pretty(html));
}

fn admin_session() -> Session {
    Session {
        session: "s2.a.0.1800000000.0011.00ff".into(),
        role: "admin".into(),
        expires_at: "2027-01-15T08:00:00Z".into(),
    }
}

/// `path` rendered for a tab holding `session`.
fn render_as(session: Option<Session>, path: &'static str, store: Store) -> String {
    render_in_runtime(rsx_fn(move || {
        let session = session.clone();
        use_hook(move || *auth::SESSION.write() = session);
        rsx! { Page { path, conn: ConnState::Live, store: store.clone() } }
    }))
}

#[test]
fn an_admin_login_may_clear_and_log_out_everywhere_and_a_reader_is_offered_the_admin_login() {
    let admin = render_as(Some(admin_session()), "/events", store());
    assert!(admin.contains(">Clear all events<"), "{admin}");
    assert!(admin.contains(">Log out everywhere<") && admin.contains(">Log out<"), "{admin}");
    assert!(!admin.contains(">Log in as admin<"), "{admin}");
    let agent = render_as(Some(admin_session()), "/agents/pc-busy", store());
    assert!(agent.contains(">Clear this agent&#39;s events<"), "{agent}");

    let reader = Session { role: "read".into(), ..admin_session() };
    for (who, session) in [("reader", Some(reader)), ("open reads", None)] {
        let page = render_as(session.clone(), "/events", store());
        assert!(!page.contains("Clear all events"), "{who}: {page}");
        assert!(!page.contains("Log out everywhere"), "{who}: {page}");
        assert!(page.contains(">Log in as admin<"), "{who}: {page}");
        assert_eq!(page.contains(">Log out<"), session.is_some(), "{who}: {page}");
        let agent = render_as(session, "/agents/pc-busy", store());
        assert!(!agent.contains("Clear this agent"), "{who}: {agent}");
    }
}

#[test]
fn login_form_is_labelled_and_says_when_a_session_ended() {
    let html = render_in_runtime(rsx_fn(|| rsx! { Login { prompt: Prompt::SessionEnded } }));
    assert!(html.contains(r#"aria-labelledby="login-title""#), "{html}");
    assert!(html.contains("Read or admin token") && html.contains(r#"type="password""#));
    assert!(html.contains("Your session has ended; log in again."), "{html}");
    insta::assert_snapshot!(pretty(html));
    let first = render_in_runtime(rsx_fn(|| rsx! { Login { prompt: Prompt::LogIn } }));
    assert!(!first.contains("session has ended"), "{first}");
    assert!(!first.contains(">Cancel<"), "reads need the login: {first}");
    let admin = render_in_runtime(rsx_fn(|| rsx! { Login { prompt: Prompt::Admin } }));
    assert!(admin.contains(">Log in as admin<") && admin.contains("Admin token (ADMIN_TOKEN)"));
    assert!(admin.contains(">Cancel<"), "the pages can be gone back to: {admin}");
}

#[test]
fn a_login_prompt_replaces_the_views_and_the_indicator() {
    let html = render_in_runtime(rsx_fn(|| {
        use_hook(|| *auth::PROMPT.write() = Some(Prompt::LogIn));
        rsx! { Page { path: "/agents/pc-busy", conn: ConnState::Connecting, store: store() } }
    }));
    assert!(html.contains(r#"id="login-title""#), "{html}");
    assert!(!html.contains("pc-busy") && !html.contains("Connecting"), "{html}");
    assert!(!html.contains("Log out"), "nobody is logged in: {html}");
    let open = render_page("/", ConnState::Live, store());
    assert!(!open.contains("login-title") && !open.contains("Log out"), "{open}");
}

/// A seed client that sends only some figures: what it left out shows as a dash, never a zero.
#[test]
fn partial_figures_show_as_dashes_never_zeros() {
    let mut store = Store::default();
    let partial = AgentSummary {
        cpu: None,
        mem_free: None,
        disk_free: None,
        net_rx_bps: None,
        net_tx_bps: None,
        ..summary("pc-seed", 2.0, 0.0)
    };
    store.set_agents(vec![partial], NOW_MS);
    let bare_proc = EventRow {
        pid: None,
        rss: None,
        cpu: None,
        ..process(3, "pc-seed", NOW_MS, 1, "a.exe", 0.0)
    };
    let bare_metric = EventRow { cpu: None, mem_free: None, ..metric(2, "pc-seed", NOW_MS, 0.0) };
    store.apply(vec![live(bare_metric), live(bare_proc.clone())]);
    let fleet = render_page("/", ConnState::Live, store.clone());
    assert!(!fleet.contains(">0.0 %"), "{fleet}");
    let page = render_page("/agents/pc-seed", ConnState::Live, store);
    assert!(!page.contains(">0.0 %") && page.contains("–"), "{page}");

    let heartbeat = EventRow { event_type: "heartbeat".into(), ..bare_proc.clone() };
    let rows = vec![heartbeat, bare_proc.clone()];
    let html = dioxus_ssr::render_element(rsx! { EventTable { rows, offset_min: 0 } });
    assert!(html.contains(">a.exe<") && html.contains(">heartbeat<"), "{html}");
    assert!(!html.contains("pid") && !html.contains(">0.0 %"), "{html}");
    let html = render_in_runtime(rsx_fn(move || {
        rsx! { ProcessTable { rows: vec![bare_proc.clone()], chosen: None, on_choose: |_| {} } }
    }));
    assert!(!html.contains(">0<") && !html.contains("0 B"), "{html}");
}

/// The fleet of [`store`] with two alerts firing on pc-busy, one pending on pc-idle and one
/// resolved on pc-gone.
fn store_with_alerts() -> Store {
    let mut store = store();
    let critical = Alert {
        severity: Severity::Critical,
        rule_name: "hot".into(),
        ..alert(4, "pc-busy", AlertState::Firing)
    };
    store.alerts.extend(vec![
        alert(1, "pc-gone", AlertState::Resolved),
        alert(2, "pc-busy", AlertState::Firing),
        alert(3, "pc-idle", AlertState::Pending),
        critical,
    ]);
    store
}

#[test]
fn fleet_shows_firing_alerts_on_cards_and_above_them() {
    let html = render_page("/", ConnState::Live, store_with_alerts());
    assert!(html.contains(">2 firing<") && html.contains(" · 1 pending"), "{html}");
    assert!(html.contains(r#"class="badge firing""#), "{html}");
    assert_eq!(html.matches(r#"class="badge firing""#).count(), 1, "only pc-busy fires");
    assert!(!html.contains("on pc-gone"), "resolved alerts are not open: {html}");
    insta::assert_snapshot!(pretty(html));
    let quiet = render_page("/", ConnState::Live, store());
    assert!(!quiet.contains("alert-strip") && !quiet.contains("badge firing"), "{quiet}");
}

#[test]
fn agent_page_lists_its_open_alerts() {
    let html = render_page("/agents/pc-busy", ConnState::Live, store_with_alerts());
    assert!(html.contains("CPU 97.5 % on pc-busy (above 90)"), "{html}");
    assert!(!html.contains("on pc-idle"), "{html}");
    // The critical one first.
    assert!(html.find(">critical<").unwrap() < html.find(">warning<").unwrap(), "{html}");
    let quiet = render_page("/agents/pc-idle", ConnState::Live, store());
    assert!(quiet.contains("No open alert."), "{quiet}");
}

#[test]
fn alerts_page_shows_open_alerts_history_and_settings() {
    let html = render_page("/alerts", ConnState::Live, store_with_alerts());
    assert!(html.contains(r#"href="/alerts""#) && html.contains(">Alerts<"), "{html}");
    let history = html.split(">History<").nth(1).unwrap();
    assert!(history.find("on pc-busy").unwrap() < history.find("on pc-gone").unwrap());
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn a_reader_sees_a_calm_note_where_channels_and_changes_are_and_no_token_field() {
    let html = render_page("/alerts", ConnState::Live, store_with_alerts());
    assert!(html.contains("Channels are listed to admins only"), "{html}");
    assert!(!html.contains("api-error") && !html.contains("<input"), "{html}");
    let settings = html.split(r#"id="settings-title""#).nth(1).unwrap();
    assert!(settings.contains(">Log in as admin<"), "{settings}");
    let admin = render_as(Some(admin_session()), "/alerts", store_with_alerts());
    let settings = admin.split(r#"id="settings-title""#).nth(1).unwrap();
    assert!(!settings.contains("admins only") && !settings.contains("Log in as admin"), "{admin}");
    assert!(!settings.contains("token"), "no token field for an admin either: {settings}");
    assert!(settings.contains(">New channel<"), "{settings}");
}

#[test]
fn rule_form_shows_the_fields_its_metric_needs() {
    let form = RuleForm { metric: Metric::ProcMissing, ..RuleForm::default() };
    let html = render_in_runtime(rsx_fn(move || {
        rsx! { RuleFormView { form: form.clone(), on_save: |_| {}, on_cancel: |_| {} } }
    }));
    assert!(html.contains(">Process<") && !html.contains(">Threshold<"), "{html}");
    let html = render_in_runtime(rsx_fn(|| {
        rsx! { RuleFormView { form: RuleForm::default(), on_save: |_| {}, on_cancel: |_| {} } }
    }));
    assert!(!html.contains(">Process<") && html.contains(">Threshold<"), "{html}");
    insta::assert_snapshot!(pretty(html));
}

#[test]
fn services_not_running_come_first_and_notices_show_level_source_and_local_time() {
    use super::machine_log::{NoticeList, ServiceTable};
    use protocol::{NoticeKind, NoticeLevel, NoticeRow, Service, ServiceState, StartMode};
    let service = |name: &str, state| Service {
        name: name.into(),
        display_name: Some(format!("{name} service")),
        state,
        start: Some(StartMode::Auto),
    };
    let services = vec![
        service("W32Time", ServiceState::Running),
        service("Spooler", ServiceState::Stopped),
        service("Audiosrv", ServiceState::Running),
    ];
    let html = dioxus_ssr::render_element(rsx! { ServiceTable { services } });
    assert!(html.contains("3 watched, 1 not running"), "{html}");
    assert!(html.find("Spooler").unwrap() < html.find("Audiosrv").unwrap(), "{html}");
    insta::assert_snapshot!("service_table", pretty(html));
    let notices = vec![NoticeRow {
        id: 9,
        agent_id: "pc".into(),
        ts: "2025-11-12T12:00:00Z".into(),
        kind: NoticeKind::Log,
        level: NoticeLevel::Error,
        source: "System/Service Control Manager".into(),
        code: Some(7034),
        message: "The Print Spooler service terminated unexpectedly.".into(),
    }];
    let html = dioxus_ssr::render_element(rsx! { NoticeList { notices, offset_min: 60 } });
    assert!(html.contains("2025-11-12 13:00:00"), "{html}");
    assert!(html.contains("System/Service Control Manager (7034)"), "{html}");
    insta::assert_snapshot!("notice_list", pretty(html));
    let empty = dioxus_ssr::render_element(rsx! { NoticeList { notices: vec![], offset_min: 0 } });
    assert!(empty.contains("No service change or log entry yet."), "{empty}");
}
