//! The MCP tools: Drive, Gmail, Calendar.

use axum::http::request::Parts;
use data_encoding::BASE64URL_NOPAD;
use http::Method;
use mcp_auth_app::UpstreamToken;
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters};
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use mcp_auth_app::tool::{query, result as done, within};
use mcp_auth_app::{McpTools, Scope, ToolError};

use crate::google::{Answer, Google};
use crate::text;

/// Read Drive.
pub const DRIVE: &str = "google:drive";
/// Read Gmail.
pub const GMAIL: &str = "google:gmail";
/// Send mail.
pub const GMAIL_SEND_SCOPE: &str = "google:gmail.send";
/// Read Calendar.
pub const CALENDAR: &str = "google:calendar";

/// Google's scope for reading Drive.
pub const DRIVE_READONLY: &str = "https://www.googleapis.com/auth/drive.readonly";
/// Google's scope for reading Gmail.
pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Google's scope for sending mail.
pub const GMAIL_SEND: &str = "https://www.googleapis.com/auth/gmail.send";
/// Google's scope for reading Calendar.
pub const CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";

/// Our scopes: the Google scope each asks for and the tools it opens.
/// Sending mail is asked for only when a client needs it (step-up).
pub const SCOPES: &[Scope] = &[
    Scope::tools(DRIVE, &[DRIVE_READONLY], &["drive_search", "drive_read"])
        .by_default()
        .described("Search and read your Google Drive files"),
    Scope::tools(GMAIL, &[GMAIL_READONLY], &["gmail_search", "gmail_read"])
        .by_default()
        .described("Search and read your email"),
    Scope::tools(GMAIL_SEND_SCOPE, &[GMAIL_SEND], &["gmail_send"]).described("Send email as you"),
    Scope::tools(CALENDAR, &[CALENDAR_READONLY], &["calendar_events"])
        .by_default()
        .described("See your calendar events"),
];

fn id<'a>(value: &'a str, what: &str) -> Result<&'a str, ToolError> {
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(value)
        .ok_or_else(|| ToolError::Invalid(format!("{what} must be letters, digits, - or _")))
}

/// An RFC 3339 UTC instant: `YYYY-MM-DDTHH:MM:SSZ`.
fn instant<'a>(value: &'a str, what: &str) -> Result<&'a str, ToolError> {
    let b = value.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let ok = b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z';
    ok.then_some(value).ok_or_else(|| {
        ToolError::Invalid(format!(
            "{what} must be a UTC time like 2026-12-01T09:00:00Z"
        ))
    })
}

fn upstream(parts: &Parts) -> Result<UpstreamToken, ToolError> {
    parts
        .extensions
        .get::<UpstreamToken>()
        .cloned()
        .ok_or_else(|| {
            ToolError::Provider(
                "sign in through this server's authorization server to use Google".into(),
            )
        })
}

/// Arguments of `drive_search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DriveSearchArgs {
    /// Text the file's name contains (1-200 characters).
    pub name_contains: String,
    /// How many, 1-50 (default 20).
    pub page_size: Option<u32>,
}

/// A Drive file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FileArgs {
    /// The file's id (from drive_search).
    pub file_id: String,
}

/// Arguments of `gmail_search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GmailSearchArgs {
    /// Words to find, as a phrase (1-200 characters, no double quotes).
    pub text: String,
    /// Only messages from this address.
    pub from: Option<String>,
    /// How many, 1-25 (default 10).
    pub max_results: Option<u32>,
}

/// A message.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MessageArgs {
    /// The message's id (from gmail_search).
    pub message_id: String,
}

/// Arguments of `gmail_send`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendArgs {
    /// Recipients (addresses like name@example.com).
    pub to: Vec<String>,
    /// Copies.
    pub cc: Option<Vec<String>>,
    /// The subject (one line, up to 200 characters).
    pub subject: String,
    /// The plain-text body (up to 50,000 bytes).
    pub body: String,
}

/// Arguments of `calendar_events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EventsArgs {
    /// From, UTC (`2026-12-01T00:00:00Z`).
    pub time_min: String,
    /// Until, UTC, after time_min, at most 366 days later.
    pub time_max: String,
    /// How many, 1-50 (default 25).
    pub max_results: Option<u32>,
}

/// The Google tools.
#[derive(Debug, Clone)]
pub struct GoogleTools {
    google: Google,
    tool_router: ToolRouter<Self>,
}

const GOOGLE_DOC: &str = "application/vnd.google-apps.document";

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+xml")
        || mime == "application/xml"
}

#[tool_router]
impl GoogleTools {
    /// Tools calling `google`.
    pub fn new(google: Google) -> Self {
        Self {
            google,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Find files in your Google Drive whose name contains some text. Returns ids for drive_read.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn drive_search(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<DriveSearchArgs>,
    ) -> CallToolResult {
        done(async {
            let q = text::drive_name_query(&a.name_contains)?;
            let size = within(a.page_size, 20, 1, 50, "page_size")?;
            let path = format!("/drive/v3/files?{}", query(&[("q", q), ("pageSize", size.to_string()), ("fields", "files(id,name,mimeType)".into())]));
            let found = self.google.json(&upstream(&parts)?, Method::GET, &path, None).await?;
            let files: Vec<Value> = found["files"].as_array().map(|a| a.iter().map(|f| json!({"id": f["id"], "name": f["name"], "type": f["mimeType"]})).collect()).unwrap_or_default();
            Ok(json!({"files": files}))
        }.await)
    }

    #[tool(
        description = "Read a Drive file as text: Google Docs exported as plain text, text files as they are (capped at 20,000 characters); other files are refused.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn drive_read(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<FileArgs>,
    ) -> CallToolResult {
        done(
            async {
                let file_id = id(&a.file_id, "file_id")?;
                let up = upstream(&parts)?;
                let meta = self
                    .google
                    .json(
                        &up,
                        Method::GET,
                        &format!("/drive/v3/files/{file_id}?fields=id,name,mimeType,size"),
                        None,
                    )
                    .await?;
                let mime = meta["mimeType"].as_str().unwrap_or("");
                let path = if mime == GOOGLE_DOC {
                    format!("/drive/v3/files/{file_id}/export?mimeType=text/plain")
                } else if is_text(mime) {
                    format!("/drive/v3/files/{file_id}?alt=media")
                } else {
                    return Err(ToolError::Invalid(format!(
                        "{} is a {mime} file, not text: it cannot be read here",
                        meta["name"].as_str().unwrap_or("the file")
                    )));
                };
                let content = match self.google.call(&up, Method::GET, &path, None).await? {
                    Answer::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Answer::Json(v) => v.to_string(),
                };
                Ok(json!({"name": meta["name"], "type": mime, "text": text::capped(&content)}))
            }
            .await,
        )
    }

    #[tool(
        description = "Search your Gmail for a phrase (optionally from one sender). Returns message ids for gmail_read.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn gmail_search(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<GmailSearchArgs>,
    ) -> CallToolResult {
        done(
            async {
                let mut q = text::gmail_phrase(&a.text)?;
                if let Some(from) = &a.from {
                    q.push_str(&format!(" from:{}", text::address(from)?));
                }
                let max = within(a.max_results, 10, 1, 25, "max_results")?;
                let found = self
                    .google
                    .json(
                        &upstream(&parts)?,
                        Method::GET,
                        &format!(
                            "/gmail/v1/users/me/messages?{}",
                            query(&[("q", q), ("maxResults", max.to_string())])
                        ),
                        None,
                    )
                    .await?;
                let ids: Vec<Value> = found["messages"]
                    .as_array()
                    .map(|a| a.iter().map(|m| m["id"].clone()).collect())
                    .unwrap_or_default();
                Ok(json!({"message_ids": ids}))
            }
            .await,
        )
    }

    #[tool(
        description = "Read one of your Gmail messages: sender, recipients, subject, date and its text (HTML reduced to text, capped at 20,000 characters).",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn gmail_read(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<MessageArgs>,
    ) -> CallToolResult {
        done(async {
            let message_id = id(&a.message_id, "message_id")?;
            let m = self.google.json(&upstream(&parts)?, Method::GET, &format!("/gmail/v1/users/me/messages/{message_id}?format=full"), None).await?;
            let header = |name: &str| -> Value {
                m["payload"]["headers"].as_array().and_then(|h| h.iter().find(|x| x["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))).map_or(Value::Null, |x| x["value"].clone())
            };
            let mut parts_list: Vec<&Value> = vec![&m["payload"]];
            if let Some(p) = m["payload"]["parts"].as_array() {
                parts_list.extend(p.iter());
            }
            let decode = |p: &Value| p["body"]["data"].as_str().and_then(|d| BASE64URL_NOPAD.decode(d.trim_end_matches('=').as_bytes()).ok()).map(|b| String::from_utf8_lossy(&b).into_owned());
            let plain = parts_list.iter().find(|p| p["mimeType"] == "text/plain").and_then(|p| decode(p));
            let html = parts_list.iter().find(|p| p["mimeType"] == "text/html").and_then(|p| decode(p));
            let body = plain.or_else(|| html.map(|h| text::html_to_text(&h))).unwrap_or_default();
            Ok(json!({"from": header("From"), "to": header("To"), "subject": header("Subject"), "date": header("Date"), "text": text::capped(&body)}))
        }.await)
    }

    #[tool(
        description = "Send an e-mail from your Gmail account (plain text). Needs the google:gmail.send permission, asked for separately.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn gmail_send(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<SendArgs>,
    ) -> CallToolResult {
        done(
            async {
                let raw =
                    text::message(&a.to, a.cc.as_deref().unwrap_or(&[]), &a.subject, &a.body)?;
                let sent = self
                    .google
                    .json(
                        &upstream(&parts)?,
                        Method::POST,
                        "/gmail/v1/users/me/messages/send",
                        Some(&json!({"raw": raw})),
                    )
                    .await?;
                Ok(json!({"sent": true, "id": sent["id"]}))
            }
            .await,
        )
    }

    #[tool(
        description = "Events of your primary Google Calendar between two UTC times.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn calendar_events(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<EventsArgs>,
    ) -> CallToolResult {
        done(async {
            let min = instant(&a.time_min, "time_min")?;
            let max = instant(&a.time_max, "time_max")?;
            if max <= min {
                return Err(ToolError::Invalid("time_max must be after time_min".into()));
            }
            let years = |t: &str| t[..4].parse::<u32>().unwrap_or(0);
            if years(max) > years(min) + 1 {
                return Err(ToolError::Invalid("ask for at most a year at a time".into()));
            }
            let n = within(a.max_results, 25, 1, 50, "max_results")?;
            let found = self.google.json(&upstream(&parts)?, Method::GET, &format!("/calendar/v3/calendars/primary/events?{}", query(&[("timeMin", min.into()), ("timeMax", max.into()), ("singleEvents", "true".into()), ("orderBy", "startTime".into()), ("maxResults", n.to_string())])), None).await?;
            let events: Vec<Value> = found["items"].as_array().map(|a| a.iter().map(|e| json!({"summary": e["summary"], "start": e["start"]["dateTime"], "end": e["end"]["dateTime"]})).collect()).unwrap_or_default();
            Ok(json!({"events": events}))
        }.await)
    }
}

impl McpTools for GoogleTools {
    fn tool_names(&self) -> Vec<String> {
        mcp_auth_app::tool_names(&self.tool_router)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for GoogleTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_instants() {
        assert!(id("1aDocAliceQuarterlyPlanXyz", "id").is_ok());
        assert!(id("../x", "id").is_err() && id("", "id").is_err() && id("a b", "id").is_err());
        assert!(instant("2026-12-01T09:00:00Z", "t").is_ok());
        for bad in [
            "2026-12-01",
            "2026-12-01T09:00:00+01:00",
            "2026-12-01T09:00:00Z' OR",
            "yesterday",
        ] {
            assert!(instant(bad, "t").is_err(), "{bad}");
        }
    }
}
