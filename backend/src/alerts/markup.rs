//! A notification's text made inert for the chat service that shows it. The text carries what
//! agents send (any printable agent id) next to what admins set, and chat services read markup
//! in it: `<!channel>` and `<url|text>` in Slack, `[text](url)` in Discord's and Teams' Markdown,
//! `@everyone` or `@channel` wherever mentions ping. Escaped, each shows as it was sent.

/// Put after every `@`: invisible, and no mention (`@everyone`, `@channel`, `@here`, `@all`)
/// is read across it, whatever the service.
const MENTION_BREAK: char = '\u{200B}';

/// What Markdown reads as markup: emphasis, code, spoilers, links and images (`[`, `]`),
/// autolinks, HTML and mentions (`<`, `>`), headings and entities. A backslash makes each a
/// plain character in CommonMark and Discord alike. (`(` without `]` starts no link.)
const MARKDOWN: &[char] = &['\\', '`', '*', '_', '~', '|', '[', ']', '<', '>', '#', '&'];

fn break_mention(c: char, out: &mut String) {
    out.push(c);
    if c == '@' {
        out.push(MENTION_BREAK);
    }
}

/// For Slack's `text` (and Mattermost's and Rocket.Chat's, which read the same): the three
/// characters Slack asks to escape, so no `<...>` mention or link can form.
pub(crate) fn slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => break_mention(c, &mut out),
        }
    }
    out
}

/// For Markdown: Discord's `content` and Teams' `text`.
pub(crate) fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if MARKDOWN.contains(&c) {
            out.push('\\');
        }
        break_mention(c, &mut out);
    }
    out
}

/// For an HTTP header (ntfy's title) or a mail subject: one line, since a line break would end
/// the header and start another.
pub(crate) fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOSTILE: &str = "<!channel> <https://phish.example|Log in> [Log in](https://x.example) \
                           @everyone & **bold** `code` ||hidden|| # big <@123>";

    #[test]
    fn slack_shows_links_and_mentions_as_text() {
        assert_eq!(
            slack(HOSTILE),
            "&lt;!channel&gt; &lt;https://phish.example|Log in&gt; [Log in](https://x.example) \
             @\u{200B}everyone &amp; **bold** `code` ||hidden|| # big &lt;@\u{200B}123&gt;"
        );
        assert_eq!(
            slack("[FIRING] [warning] cpu on web-1 (above 90.0 %)"),
            "[FIRING] [warning] cpu on web-1 (above 90.0 %)"
        );
    }

    #[test]
    fn markdown_escapes_what_would_render() {
        assert_eq!(
            markdown(HOSTILE),
            r"\<!channel\> \<https://phish.example\|Log in\> \[Log in\](https://x.example) @"
                .to_owned()
                + "\u{200B}"
                + r"everyone \& \*\*bold\*\* \`code\` \|\|hidden\|\| \# big \<@"
                + "\u{200B}123\\>"
        );
        assert_eq!(markdown(r"a\b"), r"a\\b", "a backslash cannot undo the next escape");
        assert_eq!(markdown("web-1: 90.0 % (above 80.0 %)"), "web-1: 90.0 % (above 80.0 %)");
    }

    #[test]
    fn one_line_turns_line_breaks_into_spaces() {
        assert_eq!(one_line("Alert: x on a\r\nX-Evil: 1\t"), "Alert: x on a  X-Evil: 1 ");
    }

    /// The text as the service shows it.
    fn shown_by_slack(s: &str) -> String {
        s.replace(MENTION_BREAK, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    }

    /// Whether no character that starts a link, a mention, HTML or formatting stands unescaped
    /// (a backslash escapes the next ASCII punctuation, as in CommonMark), and the text as the
    /// service shows it.
    fn markdown_reading(s: &str) -> (bool, String) {
        const LIVE: &[char] = &['<', '>', '[', ']', '*', '_', '`', '~', '|', '\\'];
        let (mut inert, mut shown, mut chars) = (true, String::new(), s.chars());
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(next) if next.is_ascii_punctuation() => shown.push(next),
                    _ => inert = false,
                },
                MENTION_BREAK => {}
                c => {
                    inert &= !LIVE.contains(&c);
                    shown.push(c);
                }
            }
        }
        (inert, shown)
    }

    fn no_mention(s: &str) -> bool {
        ["@everyone", "@here", "@channel", "@all"].iter().all(|m| !s.contains(m))
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        // Markup characters, mention words and a bit of anything else (no break of our own:
        // the property is about what an agent can send).
        proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(vec![
                    "<", ">", "&", "@", "everyone", "here", "channel", "!", "|", "[", "]", "(",
                    ")", "\\", "*", "_", "`", "~", "#", "&lt;", "http://x",
                ])
                .prop_map(str::to_owned),
                "[^\u{200B}]{0,3}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn slack_output_has_no_markup_and_shows_the_input(s in hostile_text()) {
            let out = slack(&s);
            prop_assert!(!out.contains(['<', '>']), "{out}");
            prop_assert!(no_mention(&out), "{out}");
            // Every `&` starts an entity of ours.
            let entities = ["&amp;", "&lt;", "&gt;"];
            let amps = out.match_indices('&').all(|(i, _)| {
                entities.iter().any(|e| out[i..].starts_with(e))
            });
            prop_assert!(amps, "{out}");
            prop_assert_eq!(shown_by_slack(&out), s);
        }

        #[test]
        fn markdown_output_has_no_markup_and_shows_the_input(s in hostile_text()) {
            let out = markdown(&s);
            let (inert, shown) = markdown_reading(&out);
            prop_assert!(inert, "{out}");
            prop_assert!(no_mention(&out), "{out}");
            prop_assert_eq!(shown, s);
        }

        #[test]
        fn one_line_has_no_line_break(s in "(\r|\n|\u{85}|.){0,40}") {
            let out = one_line(&s);
            prop_assert!(!out.contains(['\r', '\n', '\u{85}']), "{out:?}");
            prop_assert_eq!(out.chars().count(), s.chars().count());
        }
    }
}
