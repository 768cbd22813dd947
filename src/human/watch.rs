//! `orchestrator watch`: a live full-screen view (sessions, recent messages, file
//! overlaps) redrawn when the store changes (`core::changes`), and at least every
//! `ORCHESTRATOR_WATCH_SECS`; `q` quits. Not on a terminal, it prints the plain view the
//! same way. On SQLite every write is a change; a shared server notifies only mail and
//! notices (what wakes sessions), so there other changes show at the periodic redraw.

use super::status::{self, Entry};
use crate::core::changes::Changes;
use crate::core::clock;
use crate::core::store::messages::Recent;
use crate::core::store::Store;
use crate::core::text::{self, id8, inline};
use anyhow::Result;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What one frame shows.
pub struct View {
    pub entries: Vec<Entry>,
    pub messages: Vec<Recent>,
    pub overlaps: Vec<(String, Vec<String>)>,
}

/// Reads the current view.
pub fn load(store: &Store) -> Result<View> {
    let entries = status::collect(store, false)?;
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &entries {
        for f in &e.files {
            by_file
                .entry(f.clone())
                .or_default()
                .push(format!("SA-{}", id8(&e.id8)));
        }
    }
    let overlaps = by_file.into_iter().filter(|(_, v)| v.len() > 1).collect();
    Ok(View {
        entries,
        messages: store.recent_messages(8)?,
        overlaps,
    })
}

fn message_line(m: &Recent) -> String {
    let from = if m.sender_id == "human" {
        "human".to_string()
    } else {
        format!("SA-{}", id8(&m.sender_id))
    };
    let first = text::lines(&m.body, 70)
        .into_iter()
        .next()
        .unwrap_or_default();
    format!(
        "#{} {} {from} → {}  [{}/{} seen]  {}",
        m.id,
        clock::hh_mm(m.created_at_ms),
        inline(&m.address, text::NAME),
        m.delivered,
        m.recipients,
        inline(&first, 70)
    )
}

/// The plain-text view (non-terminal output and tests).
pub fn render_plain(v: &View) -> String {
    let mut s = status::render_table(&v.entries, false);
    s.push_str("\nrecent messages:\n");
    if v.messages.is_empty() {
        s.push_str("  (none)\n");
    }
    for m in &v.messages {
        s.push_str(&format!("  {}\n", message_line(m)));
    }
    s.push_str("\nfile overlaps (touched by more than one live session recently):\n");
    if v.overlaps.is_empty() {
        s.push_str("  (none)\n");
    }
    for (f, who) in &v.overlaps {
        s.push_str(&format!(
            "  {}: {}\n",
            inline(f, text::PATH),
            who.join(", ")
        ));
    }
    s
}

pub fn run() -> Result<i32> {
    let Some((paths, mut store)) = super::open_existing()? else {
        return Ok(0);
    };
    // Without a change signal the view still refreshes every `every`.
    let watch = Changes::open(&paths, &store, None).ok();
    let every = crate::core::settings::get().watch_every;
    if !std::io::stdout().is_terminal() {
        loop {
            // A server restart broke the connection: reopen it.
            store.reconnect_if_broken()?;
            println!("--- {} UTC", clock::iso(clock::now_ms()));
            print!("{}", render_plain(&load(&store)?));
            match watch.as_ref() {
                Some(w) => {
                    // Wake on change, but at most this often, and at least every `every`.
                    w.wait(every);
                    std::thread::sleep(Duration::from_millis(100));
                    w.drain();
                }
                None => std::thread::sleep(every),
            }
        }
    }
    let mut term = ratatui::init();
    let res = tui(&mut term, &mut store, watch.as_ref(), every);
    ratatui::restore();
    res.map(|_| 0)
}

fn tui(
    term: &mut ratatui::DefaultTerminal,
    store: &mut Store,
    watch: Option<&Changes>,
    every: Duration,
) -> Result<()> {
    let mut view = load(store)?;
    let mut last = Instant::now();
    loop {
        term.draw(|f| draw(f, &view))?;
        if event::poll(Duration::from_millis(200))? {
            if let Event::Key(k) = event::read()? {
                let quit = k.kind == KeyEventKind::Press
                    && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL)));
                if quit {
                    return Ok(());
                }
            }
        }
        let changed = watch.map(Changes::drain).unwrap_or(false);
        if changed || last.elapsed() >= every {
            store.reconnect_if_broken()?;
            view = load(store)?;
            last = Instant::now();
        }
    }
}

fn draw(f: &mut ratatui::Frame<'_>, v: &View) {
    let [top, mid, bottom, help] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(v.messages.len().clamp(1, 8) as u16 + 2),
        Constraint::Length(v.overlaps.len().clamp(1, 6) as u16 + 2),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let header = Row::new([
        "SESSION", "WHERE", "NAME", "AGENT", "ROLE", "TASK", "STATE", "SEEN", "MSGS", "FILES",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let cell = |s: Option<&str>, n: usize| inline(s.unwrap_or("-"), n).into_owned();
    let rows = v.entries.iter().map(|e| {
        Row::new(vec![
            format!("SA-{}", id8(&e.id8)),
            inline(&crate::human::status::place(e), text::PATH).into_owned(),
            cell(e.name.as_deref(), text::NAME),
            cell(e.agent_cli.as_deref(), 6),
            cell(Some(&e.role), text::NAME),
            crate::human::status::doing_cell(e, text::TASK),
            cell(Some(&e.state), text::LINE),
            e.seen_ms.map(clock::age).unwrap_or_default(),
            e.unacked_messages.to_string(),
            crate::core::render::paths(&e.files),
        ])
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Percentage(30),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Percentage(30),
    ];
    let title = format!(" live sessions: {} ", v.entries.len());
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::default().borders(Borders::ALL).title(title)),
        top,
    );
    let msgs: Vec<String> = if v.messages.is_empty() {
        vec!["(none)".into()]
    } else {
        v.messages.iter().map(message_line).collect()
    };
    f.render_widget(
        Paragraph::new(msgs.join("\n")).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" recent messages "),
        ),
        mid,
    );
    let ov: Vec<String> = if v.overlaps.is_empty() {
        vec!["(none)".into()]
    } else {
        v.overlaps
            .iter()
            .map(|(file, who)| format!("{}: {}", inline(file, text::PATH), who.join(", ")))
            .collect()
    };
    f.render_widget(
        Paragraph::new(ov.join("\n")).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" file overlaps "),
        ),
        bottom,
    );
    f.render_widget(
        Paragraph::new(" q quit · updates when the registry changes"),
        help,
    );
}
