//! The MCP tools: inputs checked before anything is sent to Spotify,
//! annotations and descriptions written for a model choosing a tool, and
//! compact structured results.

use axum::http::request::Parts;
use http::Method;
use mcp_auth_app::UpstreamToken;
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters};
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use mcp_auth_app::tool::{query, result as done, text, within};
use mcp_auth_app::{McpTools, Scope, ToolError};

use crate::spotify::Spotify;

/// Scope for reading (every tool needs it).
pub const READ: &str = "spotify:read";
/// Scope for controlling playback.
pub const PLAYBACK: &str = "spotify:playback";
/// Scope for changing playlists.
pub const PLAYLISTS: &str = "spotify:playlists";

/// Our scopes: the Spotify scopes each asks for, and the tools each opens
/// beyond [`READ`] (which every tool needs).
pub const SCOPES: &[Scope] = &[
    Scope::every_tool(
        READ,
        &[
            "user-read-private",
            "user-read-playback-state",
            "user-read-currently-playing",
            "user-read-recently-played",
            "user-top-read",
            "playlist-read-private",
        ],
    )
    .described("See what you are playing, your playlists and what you listen to most"),
    Scope::tools(
        PLAYBACK,
        &["user-modify-playback-state"],
        &[
            "play",
            "pause",
            "next_track",
            "previous_track",
            "add_to_queue",
        ],
    )
    .described("Control what is playing: play, pause, skip and queue songs"),
    Scope::tools(
        PLAYLISTS,
        &["playlist-modify-private", "playlist-modify-public"],
        &["create_playlist", "add_to_playlist"],
    )
    .described("Create playlists and add songs to them"),
];

// ------------------------------------------------------------ validation

/// A Spotify id: base62, 22 characters.
pub fn spotify_id<'a>(value: &'a str, what: &str) -> Result<&'a str, ToolError> {
    let ok = value.len() == 22 && value.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(value).ok_or_else(|| {
        ToolError::Invalid(format!(
            "{what} must be a Spotify id (22 letters and digits)"
        ))
    })
}

/// A `spotify:track:<id>` URI.
pub fn track_uri(value: &str) -> Result<&str, ToolError> {
    let id = value.strip_prefix("spotify:track:").ok_or_else(|| {
        ToolError::Invalid("a track must be given as spotify:track:<22-character id>".into())
    })?;
    spotify_id(id, "the track id")?;
    Ok(value)
}

// ------------------------------------------------------------ results

fn track(t: &Value) -> Value {
    json!({
        "name": t["name"],
        "uri": t["uri"],
        "artists": t["artists"].as_array().map(|a| a.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()),
        "album": t["album"]["name"],
    })
}

fn named(x: &Value) -> Value {
    json!({"name": x["name"], "uri": x["uri"]})
}

fn playlist(p: &Value) -> Value {
    json!({"name": p["name"], "id": p["id"], "public": p["public"], "tracks": p["items"]["total"]})
}

fn list(v: &Value, each: fn(&Value) -> Value) -> Value {
    let items: Vec<Value> = v["items"]
        .as_array()
        .map(|a| a.iter().map(each).collect())
        .unwrap_or_default();
    json!({"items": items, "total": v["total"], "offset": v["offset"]})
}

// ------------------------------------------------------------ arguments

/// Arguments of `search`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// What to look for (1-200 characters).
    pub query: String,
    /// Any of `track`, `artist`, `album`, `playlist` (default: `track`).
    pub types: Option<Vec<String>>,
    /// Results per type, 1-10 (Spotify's cap; default 10).
    pub limit: Option<u32>,
    /// Results to skip, 0-1000.
    pub offset: Option<u32>,
}

/// Arguments of `play`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PlayArgs {
    /// A `spotify:track:…` URI to play; omitted, playback resumes.
    pub track_uri: Option<String>,
}

/// A track.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TrackArgs {
    /// The track, as `spotify:track:<id>`.
    pub track_uri: String,
}

/// A page.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PageArgs {
    /// How many, 1-50 (default 20).
    pub limit: Option<u32>,
    /// How many to skip, 0-10000.
    pub offset: Option<u32>,
}

/// Arguments of `playlist_items`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PlaylistArgs {
    /// The playlist's id (22 letters and digits).
    pub playlist_id: String,
    /// How many, 1-50 (default 20).
    pub limit: Option<u32>,
    /// How many to skip, 0-10000.
    pub offset: Option<u32>,
}

/// Arguments of `create_playlist`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateArgs {
    /// The name (1-100 characters).
    pub name: String,
    /// A description (up to 300 characters).
    pub description: Option<String>,
    /// Public on the profile (default false).
    pub public: Option<bool>,
}

/// Arguments of `add_to_playlist`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// The playlist's id (one of yours).
    pub playlist_id: String,
    /// 1-100 tracks as `spotify:track:<id>`.
    pub track_uris: Vec<String>,
}

/// Arguments of `top_items`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TopArgs {
    /// `tracks` or `artists`.
    pub kind: String,
    /// `short_term` (4 weeks), `medium_term` (6 months, default) or `long_term`.
    pub time_range: Option<String>,
    /// How many, 1-50 (default 10).
    pub limit: Option<u32>,
}

// ------------------------------------------------------------ tools

/// The Spotify tools.
#[derive(Debug, Clone)]
pub struct SpotifyTools {
    spotify: Spotify,
    tool_router: ToolRouter<Self>,
}

fn upstream(parts: &Parts) -> Result<UpstreamToken, ToolError> {
    parts
        .extensions
        .get::<UpstreamToken>()
        .cloned()
        .ok_or_else(|| {
            ToolError::Provider(
                "sign in through this server's authorization server to use Spotify".into(),
            )
        })
}

#[tool_router]
impl SpotifyTools {
    /// Tools calling `spotify`.
    pub fn new(spotify: Spotify) -> Self {
        Self {
            spotify,
            tool_router: Self::tool_router(),
        }
    }

    async fn get(&self, parts: &Parts, path: &str) -> Result<Value, ToolError> {
        self.spotify
            .call(&upstream(parts)?, Method::GET, path, None)
            .await
    }

    #[tool(
        description = "Search Spotify's catalog for tracks, artists, albums or playlists by name. Returns names and spotify: URIs to use with play, add_to_queue and add_to_playlist.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn search(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<SearchArgs>,
    ) -> CallToolResult {
        done(
            async {
                let q = text(&a.query, 200, "the query")?;
                let types = a.types.unwrap_or_else(|| vec!["track".into()]);
                if types.is_empty()
                    || types.len() > 4
                    || types
                        .iter()
                        .any(|t| !["track", "artist", "album", "playlist"].contains(&t.as_str()))
                {
                    return Err(ToolError::Invalid(
                        "types are track, artist, album or playlist".into(),
                    ));
                }
                let limit = within(a.limit, 10, 1, 10, "limit")?;
                let offset = within(a.offset, 0, 0, 1000, "offset")?;
                let found = self
                    .get(
                        &parts,
                        &format!(
                            "/v1/search?{}",
                            query(&[
                                ("q", q.to_owned()),
                                ("type", types.join(",")),
                                ("limit", limit.to_string()),
                                ("offset", offset.to_string())
                            ])
                        ),
                    )
                    .await?;
                let mut out = serde_json::Map::new();
                for kind in &types {
                    let key = format!("{kind}s");
                    let each: fn(&Value) -> Value = match kind.as_str() {
                        "track" => track,
                        "playlist" => playlist,
                        _ => named,
                    };
                    out.insert(key.clone(), list(&found[&key], each));
                }
                Ok(Value::Object(out))
            }
            .await,
        )
    }

    #[tool(
        description = "What is playing now on your Spotify, if anything.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn now_playing(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        done(
            async {
                let now = self.get(&parts, "/v1/me/player/currently-playing").await?;
                Ok(if now.is_null() {
                    json!({"playing": false, "track": null})
                } else {
                    json!({"playing": now["is_playing"], "track": track(&now["item"])})
                })
            }
            .await,
        )
    }

    #[tool(
        description = "Start or resume playback on your active device; give a spotify:track: URI to play that track. Needs Spotify Premium.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn play(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<PlayArgs>,
    ) -> CallToolResult {
        done(
            async {
                let body = match &a.track_uri {
                    Some(uri) => Some(json!({"uris": [track_uri(uri)?]})),
                    None => None,
                };
                self.spotify
                    .call(
                        &upstream(&parts)?,
                        Method::PUT,
                        "/v1/me/player/play",
                        body.as_ref(),
                    )
                    .await?;
                Ok(json!({"ok": true}))
            }
            .await,
        )
    }

    #[tool(
        description = "Pause playback. Needs Spotify Premium.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn pause(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        done(
            async {
                self.spotify
                    .call(&upstream(&parts)?, Method::PUT, "/v1/me/player/pause", None)
                    .await?;
                Ok(json!({"ok": true}))
            }
            .await,
        )
    }

    #[tool(
        description = "Skip to the next track. Needs Spotify Premium.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn next_track(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        done(
            async {
                self.spotify
                    .call(&upstream(&parts)?, Method::POST, "/v1/me/player/next", None)
                    .await?;
                Ok(json!({"ok": true}))
            }
            .await,
        )
    }

    #[tool(
        description = "Go back to the previous track. Needs Spotify Premium.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn previous_track(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        done(
            async {
                self.spotify
                    .call(
                        &upstream(&parts)?,
                        Method::POST,
                        "/v1/me/player/previous",
                        None,
                    )
                    .await?;
                Ok(json!({"ok": true}))
            }
            .await,
        )
    }

    #[tool(
        description = "Add a track (spotify:track: URI) to the end of your playback queue. Needs Spotify Premium.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn add_to_queue(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<TrackArgs>,
    ) -> CallToolResult {
        done(
            async {
                let uri = track_uri(&a.track_uri)?;
                self.spotify
                    .call(
                        &upstream(&parts)?,
                        Method::POST,
                        &format!("/v1/me/player/queue?{}", query(&[("uri", uri.to_owned())])),
                        None,
                    )
                    .await?;
                Ok(json!({"queued": uri}))
            }
            .await,
        )
    }

    #[tool(
        description = "Your playlists (names, ids, track counts).",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn my_playlists(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<PageArgs>,
    ) -> CallToolResult {
        done(
            async {
                let limit = within(a.limit, 20, 1, 50, "limit")?;
                let offset = within(a.offset, 0, 0, 10_000, "offset")?;
                let found = self
                    .get(
                        &parts,
                        &format!("/v1/me/playlists?limit={limit}&offset={offset}"),
                    )
                    .await?;
                Ok(list(&found, playlist))
            }
            .await,
        )
    }

    #[tool(
        description = "The tracks of a playlist (yours, or a public one) by its id.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn playlist_items(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<PlaylistArgs>,
    ) -> CallToolResult {
        done(
            async {
                let id = spotify_id(&a.playlist_id, "playlist_id")?;
                let limit = within(a.limit, 20, 1, 50, "limit")?;
                let offset = within(a.offset, 0, 0, 10_000, "offset")?;
                let found = self
                    .get(
                        &parts,
                        &format!("/v1/playlists/{id}/items?limit={limit}&offset={offset}"),
                    )
                    .await?;
                Ok(list(&found, |i| track(&i["item"])))
            }
            .await,
        )
    }

    #[tool(
        description = "Create a new playlist in your account (private unless public is true). Returns its id.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn create_playlist(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<CreateArgs>,
    ) -> CallToolResult {
        done(async {
            let name = text(&a.name, 100, "the name")?;
            let description = match &a.description {
                Some(d) if !d.trim().is_empty() => text(d, 300, "the description")?,
                _ => "",
            };
            let body = json!({"name": name, "description": description, "public": a.public.unwrap_or(false)});
            let created = self.spotify.call(&upstream(&parts)?, Method::POST, "/v1/me/playlists", Some(&body)).await?;
            Ok(playlist(&created))
        }.await)
    }

    #[tool(
        description = "Add tracks (spotify:track: URIs, up to 100) to one of your playlists.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn add_to_playlist(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<AddArgs>,
    ) -> CallToolResult {
        done(
            async {
                let id = spotify_id(&a.playlist_id, "playlist_id")?;
                if a.track_uris.is_empty() || a.track_uris.len() > 100 {
                    return Err(ToolError::Invalid(
                        "give between 1 and 100 track URIs".into(),
                    ));
                }
                let uris = a
                    .track_uris
                    .iter()
                    .map(|u| track_uri(u))
                    .collect::<Result<Vec<_>, _>>()?;
                self.spotify
                    .call(
                        &upstream(&parts)?,
                        Method::POST,
                        &format!("/v1/playlists/{id}/items"),
                        Some(&json!({"uris": uris})),
                    )
                    .await?;
                Ok(json!({"added": uris.len()}))
            }
            .await,
        )
    }

    #[tool(
        description = "Tracks you played recently, newest first.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn recently_played(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<PageArgs>,
    ) -> CallToolResult {
        done(
            async {
                let limit = within(a.limit, 20, 1, 50, "limit")?;
                let found = self
                    .get(
                        &parts,
                        &format!("/v1/me/player/recently-played?limit={limit}"),
                    )
                    .await?;
                Ok(list(&found, |i| track(&i["track"])))
            }
            .await,
        )
    }

    #[tool(
        description = "Your most played tracks or artists over a time range.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn top_items(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(a): Parameters<TopArgs>,
    ) -> CallToolResult {
        done(
            async {
                if !["tracks", "artists"].contains(&a.kind.as_str()) {
                    return Err(ToolError::Invalid("kind is tracks or artists".into()));
                }
                let range = a.time_range.as_deref().unwrap_or("medium_term");
                if !["short_term", "medium_term", "long_term"].contains(&range) {
                    return Err(ToolError::Invalid(
                        "time_range is short_term, medium_term or long_term".into(),
                    ));
                }
                let limit = within(a.limit, 10, 1, 50, "limit")?;
                let found = self
                    .get(
                        &parts,
                        &format!("/v1/me/top/{}?time_range={range}&limit={limit}", a.kind),
                    )
                    .await?;
                Ok(list(&found, if a.kind == "tracks" { track } else { named }))
            }
            .await,
        )
    }
}

impl McpTools for SpotifyTools {
    fn tool_names(&self) -> Vec<String> {
        mcp_auth_app::tool_names(&self.tool_router)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SpotifyTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        assert!(spotify_id("c9QeWJKY40uvSwMFLZDe1f", "id").is_ok());
        for bad in [
            "",
            "short",
            "c9QeWJKY40uvSwMFLZDe1f0",
            "c9QeWJKY40uvSwMFLZDe1-",
            "../../../etc/passwdxxxx",
        ] {
            assert!(spotify_id(bad, "id").is_err(), "{bad}");
        }
        assert!(track_uri("spotify:track:c9QeWJKY40uvSwMFLZDe1f").is_ok());
        assert!(track_uri("spotify:album:c9QeWJKY40uvSwMFLZDe1f").is_err());
        assert!(track_uri("https://open.spotify.com/track/x").is_err());
        assert!(within(Some(11), 10, 1, 10, "limit").is_err());
        assert!(within(Some(0), 10, 1, 10, "limit").is_err());
        assert_eq!(within(None, 10, 1, 10, "limit").unwrap(), 10);
        assert!(text("  ", 10, "q").is_err());
        assert!(text("a\nb", 10, "q").is_err());
        assert!(text(&"x".repeat(11), 10, "q").is_err());
        assert_eq!(text(" ok ", 10, "q").unwrap(), "ok");
    }
}
