//! Benches for the mcp-auth crates; see benches/.
