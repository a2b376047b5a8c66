//! Untrusted text in and out: Drive and Gmail query escaping, address and
//! header checks, an RFC 5322 message with a proper MIME encoding, HTML
//! reduced to text, size caps.

use data_encoding::{BASE64, BASE64URL_NOPAD};

use mcp_auth_app::ToolError;

/// Most characters of a message or file returned to the model.
pub const MAX_TEXT: usize = 20_000;

fn invalid(why: impl Into<String>) -> ToolError {
    ToolError::Invalid(why.into())
}

/// Plain text from a person or a model: trimmed, non-empty, at most `max`
/// characters, no control characters (CR and LF included).
pub fn line<'a>(value: &'a str, max: usize, what: &str) -> Result<&'a str, ToolError> {
    mcp_auth_app::tool::text(value, max, what)
}

/// `name contains '<value>'` for Drive's query language: the value is a
/// string literal with `\` and `'` escaped, so it can never close the
/// literal and add a clause.
pub fn drive_name_query(value: &str) -> Result<String, ToolError> {
    let value = line(value, 200, "the name")?;
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    Ok(format!("name contains '{escaped}' and trashed = false"))
}

/// A Gmail search for a phrase: the text is quoted, so its words are never
/// operators (`from:`, `OR`, `in:`...). Gmail's syntax has no escape for a
/// double quote inside a phrase: those are refused.
pub fn gmail_phrase(value: &str) -> Result<String, ToolError> {
    let value = line(value, 200, "the search text")?;
    if value.contains('"') {
        return Err(invalid("the search text cannot contain double quotes"));
    }
    Ok(format!("\"{value}\""))
}

/// An e-mail address (RFC 5322 addr-spec, the common subset): a local part
/// of atext and dots, `@`, a domain of dot-separated labels. No display
/// name, no spaces, no comments, no line breaks.
pub fn address(value: &str) -> Result<&str, ToolError> {
    let bad = || {
        invalid(format!(
            "{value:?} is not an e-mail address (name@example.com)"
        ))
    };
    let value = value.trim();
    if value.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = value.rsplit_once('@').ok_or_else(bad)?;
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then_some(value).ok_or_else(bad)
}

/// A header value: RFC 2047 encoded-word when not plain ASCII.
fn header_text(value: &str) -> String {
    if value.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        value.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", BASE64.encode(value.as_bytes()))
    }
}

/// An RFC 5322 message, UTF-8 text body in base64 (lines of 76), CRLF line
/// ends, as Gmail's `messages.send` wants it: base64url of the bytes.
/// Recipients are checked addresses; the subject has no line break (a CR
/// or LF would start a new header: refused, not stripped).
pub fn message(
    to: &[String],
    cc: &[String],
    subject: &str,
    body: &str,
) -> Result<String, ToolError> {
    if to.is_empty() {
        return Err(invalid("give at least one recipient"));
    }
    if to.len() + cc.len() > 20 {
        return Err(invalid("at most 20 recipients"));
    }
    let to: Vec<&str> = to.iter().map(|a| address(a)).collect::<Result<_, _>>()?;
    let cc: Vec<&str> = cc.iter().map(|a| address(a)).collect::<Result<_, _>>()?;
    let subject = line(subject, 200, "the subject")?;
    if body.len() > 50_000 {
        return Err(invalid("the body is longer than 50,000 bytes"));
    }
    let mut out = String::new();
    out.push_str(&format!("To: {}\r\n", to.join(", ")));
    if !cc.is_empty() {
        out.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
    }
    out.push_str(&format!("Subject: {}\r\n", header_text(subject)));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str("Content-Type: text/plain; charset=\"UTF-8\"\r\n");
    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    let encoded = BASE64.encode(body.as_bytes());
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    Ok(BASE64URL_NOPAD.encode(out.as_bytes()))
}

/// HTML reduced to text: tags dropped (script and style with their
/// content), the common entities decoded, blank runs collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let lower = after.to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            lower.find("</script>").map(|e| e + "</script>".len())
        } else if lower.starts_with("<style") {
            lower.find("</style>").map(|e| e + "</style>".len())
        } else {
            after.find('>').map(|e| e + 1)
        };
        match skip_to {
            Some(end) => {
                out.push(' ');
                rest = &after[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most [`MAX_TEXT`] characters, with a note when cut.
pub fn capped(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_TEXT).collect();
    format!("{cut}\n[… cut at {MAX_TEXT} characters]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_literals_cannot_be_closed() {
        assert_eq!(
            drive_name_query("it's").unwrap(),
            "name contains 'it\\'s' and trashed = false"
        );
        assert_eq!(
            drive_name_query("a\\' or name contains '").unwrap(),
            "name contains 'a\\\\\\' or name contains \\'' and trashed = false"
        );
        assert!(drive_name_query("x\ny").is_err());
    }

    #[test]
    fn gmail_words_stay_a_phrase() {
        assert_eq!(
            gmail_phrase("lunch OR from:boss").unwrap(),
            "\"lunch OR from:boss\""
        );
        assert!(gmail_phrase("a\" OR in:anywhere \"b").is_err());
    }

    #[test]
    fn addresses() {
        for good in ["a@example.com", "first.last+tag@sub.example.org"] {
            assert!(address(good).is_ok(), "{good}");
        }
        for bad in [
            "a@b",
            "no-at.example.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@evil.com",
            "<a@example.com>",
            "a@-x.com",
            ".a@example.com",
            "a,b@example.com",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_is_rfc5322_with_a_mime_body_and_no_header_injection() {
        let raw = message(
            &["bob@example.com".into()],
            &[],
            "Grüße",
            "Hello\r\nBcc: evil@example.com\r\n",
        )
        .unwrap();
        let text = String::from_utf8(BASE64URL_NOPAD.decode(raw.as_bytes()).unwrap()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Subject: =?UTF-8?B?R3LDvMOfZQ==?="), "{head}");
        assert!(!head.contains("Bcc"), "{head}");
        let decoded = BASE64.decode(body.replace("\r\n", "").as_bytes()).unwrap();
        assert_eq!(decoded, b"Hello\r\nBcc: evil@example.com\r\n");
        assert!(
            message(
                &["bob@example.com".into()],
                &[],
                "Hi\r\nBcc: evil@example.com",
                "x"
            )
            .is_err()
        );
        assert!(
            message(
                &["bob@example.com\nBcc: e@example.com".into()],
                &[],
                "Hi",
                "x"
            )
            .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn outside_text_never_panics_and_never_adds_a_header(
            html in ".{0,300}",
            subject in ".{0,80}",
            to in "[a-z.@\r\n<>, ]{0,40}",
        ) {
            let _ = html_to_text(&html);
            let _ = capped(&html);
            let _ = drive_name_query(&html);
            let _ = gmail_phrase(&html);
            if let Ok(raw) = message(&[to], &[], &subject, "body") {
                let text = String::from_utf8(BASE64URL_NOPAD.decode(raw.as_bytes()).unwrap()).unwrap();
                let head = text.split_once("\r\n\r\n").unwrap().0;
                let names: Vec<&str> = head.split("\r\n").map(|l| l.split(':').next().unwrap()).collect();
                proptest::prop_assert_eq!(names, ["To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"]);
            }
        }
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        let long = "é".repeat(MAX_TEXT + 5);
        let cut = capped(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_TEXT)));
        assert!(cut.ends_with("[… cut at 20000 characters]"));
        assert_eq!(capped("short"), "short");
    }

    #[test]
    fn html_becomes_text() {
        assert_eq!(
            html_to_text(
                "<h1>Digest</h1><p>Rust &amp; you.</p><script>evil()</script><style>p{}</style>"
            ),
            "Digest Rust & you."
        );
    }
}
