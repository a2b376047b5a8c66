//! `AuthStore` on Redis: every multi-key change one Lua script.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AuthStore for RedisAuthStore {
    fn put_pending(
        &self,
        key: StoreKey,
        pending: PendingSignIn,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let wire = PendingWire {
                browser: HEXLOWER.encode(&pending.browser),
                subject: pending
                    .subject
                    .as_ref()
                    .map(|s| self.subjects.seal(s))
                    .transpose()?,
                consented: pending.consented,
                client: pending.client,
                redirect_uri: pending.redirect_uri,
                state: pending.state,
                code_challenge: pending.code_challenge,
                resource: pending.resource,
                scopes: pending.scopes,
                csrf: pending.csrf,
                expires_at: pending.expires_at,
            };
            let _: () = redis::cmd("SET")
                .arg(self.key("pending", &hex(key)))
                .arg(json(&wire)?)
                .arg("EXAT")
                .arg(wire.expires_at.max(1))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        Box::pin(async move {
            let value: Option<String> = self
                .conn
                .clone()
                .get(self.key("pending", &hex(key)))
                .await
                .map_err(|e| unavailable(&e))?;
            decode_pending(value, now, &self.subjects)
        })
    }

    fn take_pending(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<PendingSignIn>, StoreError>> {
        Box::pin(async move {
            let value: Option<String> = redis::cmd("GETDEL")
                .arg(self.key("pending", &hex(key)))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            decode_pending(value, now, &self.subjects)
        })
    }

    fn put_code(&self, key: StoreKey, code: CodeRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let wire = CodeWire {
                grant: GrantWire::from(&code.grant, &self.subjects)?,
                redirect_uri: code.redirect_uri,
                code_challenge: code.code_challenge,
                expires_at: code.expires_at,
            };
            let value = format!("F:{}\n{}", code.grant.id, json(&wire)?);
            let _: () = redis::cmd("SET")
                .arg(self.key("code", &hex(key)))
                .arg(value)
                .arg("EXAT")
                .arg(code.expires_at + 3600)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn redeem_code(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Redemption, StoreError>> {
        Box::pin(async move {
            let reply: Vec<String> = SCRIPTS
                .redeem
                .key(self.key("code", &hex(key)))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            self.replicated().await?;
            match reply.as_slice() {
                [kind, record] if kind == "fresh" => {
                    let wire: CodeWire = serde_json::from_str(record).map_err(|_| corrupt())?;
                    if wire.expires_at <= now {
                        return Ok(Redemption::Unknown);
                    }
                    Ok(Redemption::Fresh(Box::new(CodeRecord::new(
                        wire.grant.into_grant(&self.subjects)?,
                        wire.redirect_uri,
                        wire.code_challenge,
                        wire.expires_at,
                    ))))
                }
                [kind, grant_id] if kind == "replayed" => Ok(Redemption::Replayed {
                    grant_id: grant_id.clone(),
                }),
                _ => Ok(Redemption::Unknown),
            }
        })
    }

    fn code_replayed(&self, key: StoreKey) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let value: Option<String> = self
                .conn
                .clone()
                .get(self.key("code", &hex(key)))
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(value.is_some_and(|v| v.starts_with("R:")))
        })
    }

    fn put_grant(&self, grant: Grant) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let _: i64 = SCRIPTS
                .index_grant
                .key(self.key("user", &self.subjects.index_name(&grant.subject)))
                .arg(&self.prefix)
                .arg(self.subjects.index_name(&grant.subject))
                .arg(&grant.id)
                .arg(grant.expires_at.max(1))
                .arg(self.grant_value(&grant)?)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<Option<Grant>, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move { Ok(self.read_grant(&id).await?.filter(|g| g.expires_at > now)) })
    }

    fn touch_grant(&self, id: &str, now: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_owned();
        Box::pin(async move {
            if let Some(mut grant) = self.read_grant(&id).await? {
                grant.last_used = now;
                self.rewrite_grant(&grant).await?;
            }
            Ok(())
        })
    }

    fn revoke_grant(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let revoked: i64 = SCRIPTS
                .revoke
                .key(self.key("grant", &id))
                .arg(&self.prefix)
                .arg(&id)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            self.replicated().await?;
            Ok(revoked == 1)
        })
    }

    fn grant_count_bound<'a>(
        &'a self,
        user: &'a UserId,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        // The indexes' sizes: every live grant is in one (ended ones may
        // still be, until a listing drops them).
        let indexes: Vec<String> = std::iter::once(self.subjects.index_name(user))
            .chain(self.subjects.legacy_index_name(user))
            .map(|name| self.key("user", &name))
            .collect();
        Box::pin(async move {
            let mut count = 0;
            for index in indexes {
                let size: usize = self
                    .conn
                    .clone()
                    .scard(&index)
                    .await
                    .map_err(|e| unavailable(&e))?;
                count += size;
            }
            Ok(count)
        })
    }

    fn grants_of(&self, user: &UserId, now: u64) -> BoxFuture<'_, Result<Vec<Grant>, StoreError>> {
        // The user's index, and (while pseudonyms are on) the one written
        // before them, until its grants end.
        let indexes: Vec<String> = std::iter::once(self.subjects.index_name(user))
            .chain(self.subjects.legacy_index_name(user))
            .map(|name| self.key("user", &name))
            .collect();
        Box::pin(async move {
            let mut grants = Vec::new();
            for index in indexes {
                let ids: Vec<String> = self
                    .conn
                    .clone()
                    .smembers(&index)
                    .await
                    .map_err(|e| unavailable(&e))?;
                for id in ids {
                    match self.read_grant(&id).await? {
                        Some(grant) if grant.expires_at > now => grants.push(grant),
                        Some(_) => {}
                        None => {
                            let _: () = self
                                .conn
                                .clone()
                                .srem(&index, &id)
                                .await
                                .map_err(|e| unavailable(&e))?;
                        }
                    }
                }
            }
            grants.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(grants)
        })
    }

    fn revoke_all(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            // Every live grant has its key; no list of them is kept.
            let grants = format!("{}grant:", self.prefix);
            let ids: Vec<String> = self
                .conn
                .scan_prefix(&grants)
                .await
                .map_err(|e| unavailable(&e))?
                .into_iter()
                .filter_map(|k| k.get(grants.len()..).map(str::to_owned))
                .collect();
            // The list of grants earlier versions kept.
            let _: () = self
                .conn
                .clone()
                .del(format!("{}grants", self.prefix))
                .await
                .map_err(|e| unavailable(&e))?;
            let mut n = 0;
            for id in ids {
                n += usize::from(self.revoke_grant(&id).await?);
            }
            Ok(n)
        })
    }

    fn put_refresh(
        &self,
        key: StoreKey,
        record: RefreshRecord,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let value = format!(
                "A:{}\n{}",
                record.grant_id,
                json(&RefreshWire {
                    grant_id: record.grant_id.clone(),
                    scopes: record.scopes.clone(),
                })?
            );
            let _: i64 = SCRIPTS
                .put_refresh
                .key(self.key("refresh", &hex(key)))
                .arg(&self.prefix)
                .arg(hex(key))
                .arg(value)
                .arg(&record.grant_id)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn refresh(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<RefreshRecord>, StoreError>> {
        Box::pin(async move {
            let value: Option<String> = self
                .conn
                .clone()
                .get(self.key("refresh", &hex(key)))
                .await
                .map_err(|e| unavailable(&e))?;
            value.map(|v| decode_refresh(&v)).transpose()
        })
    }

    fn refresh_and_grant(
        &self,
        key: StoreKey,
        now: u64,
    ) -> BoxFuture<'_, Result<Option<RefreshAndGrant>, StoreError>> {
        Box::pin(async move {
            let reply: Vec<String> = SCRIPTS
                .refresh_and_grant
                .key(self.key("refresh", &hex(key)))
                .arg(&self.prefix)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            let mut reply = reply.iter();
            let Some(refresh) = reply.next() else {
                return Ok(None);
            };
            let record = decode_refresh(refresh)?;
            let grant = match reply.next() {
                Some(value) => Some(self.decode_grant(value)?).filter(|g| g.expires_at > now),
                None => None,
            };
            Ok(Some((record, grant)))
        })
    }

    fn rotate_refresh(
        &self,
        old: StoreKey,
        new: StoreKey,
        record: RefreshRecord,
        now: u64,
        grace: u64,
        sealed_successor: Vec<u8>,
    ) -> BoxFuture<'_, Result<Rotation, StoreError>> {
        Box::pin(async move {
            let reply: Vec<String> = SCRIPTS
                .rotate
                .key(self.key("refresh", &hex(old)))
                .arg(&self.prefix)
                .arg(hex(old))
                .arg(hex(new))
                .arg(now)
                .arg(grace)
                .arg(json(&RefreshWire {
                    grant_id: record.grant_id.clone(),
                    scopes: record.scopes.clone(),
                })?)
                .arg(data_encoding::BASE64URL_NOPAD.encode(&sealed_successor))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            self.replicated().await?;
            match reply.as_slice() {
                [kind, previous] if kind == "rotated" => {
                    let wire: RefreshWire =
                        serde_json::from_str(previous).map_err(|_| corrupt())?;
                    Ok(Rotation::Rotated(RefreshRecord::new(
                        wire.grant_id,
                        wire.scopes,
                    )))
                }
                [kind, previous, sealed] if kind == "retried" => {
                    let wire: RefreshWire =
                        serde_json::from_str(previous).map_err(|_| corrupt())?;
                    Ok(Rotation::Retried {
                        record: RefreshRecord::new(wire.grant_id, wire.scopes),
                        sealed_successor: data_encoding::BASE64URL_NOPAD
                            .decode(sealed.as_bytes())
                            .map_err(|_| corrupt())?,
                    })
                }
                [kind, grant_id] if kind == "reused" => Ok(Rotation::Reused {
                    grant_id: grant_id.clone(),
                }),
                _ => Ok(Rotation::Unknown),
            }
        })
    }

    fn put_consent(&self, key: StoreKey, until: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let _: () = redis::cmd("SET")
                .arg(self.key("consent", &hex(self.subjects.hide(key))))
                .arg(until)
                .arg("EXAT")
                .arg(until.max(1))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn consent(&self, key: StoreKey, now: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let until: Option<u64> = self
                .conn
                .clone()
                .get(self.key("consent", &hex(self.subjects.hide(key))))
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(until.is_some_and(|until| until > now))
        })
    }

    fn put_client(&self, client: ClientInfo) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // Gone once unused for the client TTL (the server refuses it
            // after its registration TTL anyway).
            let mut set = redis::cmd("SET");
            set.arg(self.key("client", &client.client_id))
                .arg(json(&client)?);
            if client.last_used > 0 {
                set.arg("EXAT")
                    .arg(client.last_used.saturating_add(self.client_ttl));
            } else {
                set.arg("EX").arg(self.client_ttl);
            }
            let _: () = set
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn client(&self, id: &str) -> BoxFuture<'_, Result<Option<ClientInfo>, StoreError>> {
        let key = self.key("client", id);
        Box::pin(async move {
            let value: Option<String> = self
                .conn
                .clone()
                .get(key)
                .await
                .map_err(|e| unavailable(&e))?;
            value
                .map(|v| serde_json::from_str(&v).map_err(|_| corrupt()))
                .transpose()
        })
    }

    fn try_lock(
        &self,
        name: StoreKey,
        holder: &str,
        _now: u64,
        ttl: u64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let holder = holder.to_owned();
        Box::pin(async move {
            let taken: Option<String> = redis::cmd("SET")
                .arg(self.key("lock", &hex(self.subjects.hide(name))))
                .arg(holder)
                .arg("NX")
                .arg("EX")
                .arg(ttl.max(1))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(taken.is_some())
        })
    }

    fn unlock(&self, name: StoreKey, holder: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let holder = holder.to_owned();
        Box::pin(async move {
            let _: i64 = SCRIPTS
                .unlock
                .key(self.key("lock", &hex(self.subjects.hide(name))))
                .arg(holder)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            ping(&self.conn).await.map_err(|e| match e {
                RedisSetupError::Unavailable(what) => StoreError::Unavailable(what),
                _ => StoreError::Unavailable("unreachable"),
            })
        })
    }
}

fn decode_pending(
    value: Option<String>,
    now: u64,
    subjects: &Subjects,
) -> Result<Option<PendingSignIn>, StoreError> {
    let Some(value) = value else { return Ok(None) };
    let wire: PendingWire = serde_json::from_str(&value).map_err(|_| corrupt())?;
    if wire.expires_at <= now {
        return Ok(None);
    }
    let browser: [u8; 32] = HEXLOWER
        .decode(wire.browser.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let mut pending = PendingSignIn::new(
        wire.client,
        wire.redirect_uri,
        wire.state,
        wire.code_challenge,
        wire.resource,
        wire.scopes,
        browser,
        wire.csrf,
        wire.expires_at,
    );
    pending.consented = wire.consented;
    pending.subject = wire.subject.map(|s| subjects.open(&s)).transpose()?;
    Ok(Some(pending))
}

/// A refresh token's record from its stored value (the record is the last
/// line, whether active or rotated).
fn decode_refresh(value: &str) -> Result<RefreshRecord, StoreError> {
    let record = value.rsplit('\n').next().ok_or_else(corrupt)?;
    let wire: RefreshWire = serde_json::from_str(record).map_err(|_| corrupt())?;
    Ok(RefreshRecord::new(wire.grant_id, wire.scopes))
}
