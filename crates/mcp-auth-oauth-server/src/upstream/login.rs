//! The upstream login: consent first, then the provider's sign-in; its
//! tokens kept in the vault.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::BindingCheck;

impl Upstream {
    /// The mapped upstream scopes of `ours` (base scopes not included).
    fn mapped(&self, ours: &[String]) -> BTreeSet<String> {
        ours.iter()
            .filter_map(|s| self.scope_map.get(s))
            .flatten()
            .cloned()
            .collect()
    }

    pub(super) async fn load(&self, subject: &UserId) -> Result<Option<Credential>, ()> {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        match tokio::task::spawn_blocking(move || vault.get(&subject, &key)).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    pub(super) async fn store(&self, subject: &UserId, credential: Credential) -> Result<(), ()> {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        match tokio::task::spawn_blocking(move || vault.put(&subject, &key, &credential)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    pub(super) async fn delete(&self, subject: &UserId) {
        let vault = self.vault.clone();
        let (subject, key) = (subject.clone(), self.vault_key.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || vault.delete(&subject, &key)).await
        {
            tracing::warn!(target: AUDIT, event = "upstream_vault_error", reason = %e);
        }
    }

    fn usable(&self, credential: &Credential) -> bool {
        credential.refresh_token().is_some()
            || !credential.expires_within(self.clock.as_ref(), self.margin)
    }

    pub(super) fn fresh(&self, credential: &Credential) -> bool {
        !credential.expires_within(self.clock.as_ref(), self.margin)
    }

    /// The person's subject from the new tokens.
    async fn subject_of(&self, tokens: &TokenSet) -> Result<UserId, LoginError> {
        let id = match &self.subject {
            SubjectSource::IdToken => {
                tokens
                    .subject()
                    .map(str::to_owned)
                    .ok_or(LoginError::Invalid(
                        "the provider's ID token names no subject",
                    ))?
            }
            SubjectSource::UserInfo { url, field } => {
                let request = http::Request::get(url.as_str())
                    .header(header::ACCEPT, "application/json")
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", tokens.access_token.expose_secret()),
                    )
                    .body(Vec::new())
                    .map_err(|_| LoginError::Unavailable)?;
                let response = self.http.send(request).await.map_err(|e| {
                    tracing::warn!(target: AUDIT, event = "upstream_userinfo_failed", reason = %e);
                    LoginError::Unavailable
                })?;
                if !response.status().is_success() {
                    tracing::warn!(target: AUDIT, event = "upstream_userinfo_failed", status = response.status().as_u16());
                    return Err(LoginError::Unavailable);
                }
                let value: serde_json::Value = serde_json::from_slice(response.body())
                    .map_err(|_| LoginError::Invalid("the provider's user-info answer"))?;
                match value.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(LoginError::Invalid("the provider's user-info answer")),
                }
            }
        };
        UserId::new(format!("{}:{id}", self.namespace))
            .map_err(|_| LoginError::Invalid("the provider's account id"))
    }
}

/// What the vault keeps of `tokens`: the refresh token, or `kept` when the
/// provider sent none.
pub(super) fn credential(
    tokens: &TokenSet,
    scopes: impl IntoIterator<Item = String>,
    kept: Option<SecretString>,
) -> Credential {
    let mut credential = Credential::new(tokens.access_token.clone())
        .with_scopes(scopes)
        .with_token_type("Bearer");
    if let Some(exp) = tokens.expires_at {
        credential = credential.with_expires_at(exp);
    }
    if let Some(refresh) = tokens.refresh_token.clone().or(kept) {
        credential = credential.with_refresh_token(refresh);
    }
    credential
}

/// The vault's record as tokens to refresh or revoke.
pub(super) fn token_set(held: &Credential) -> TokenSet {
    TokenSet::new(
        held.access_token().clone(),
        held.refresh_token().cloned(),
        held.expires_at(),
        held.scopes().to_vec(),
    )
}

fn login_error(error: &OAuthError) -> LoginError {
    match error {
        OAuthError::AuthorizationDenied { .. } => LoginError::Refused,
        OAuthError::Network(_)
        | OAuthError::PendingStoreUnavailable(_)
        | OAuthError::TooManyPending => LoginError::Unavailable,
        OAuthError::UnknownState | OAuthError::ExpiredState | OAuthError::MissingState => {
            LoginError::Invalid("the sign-in expired or was already used; start again")
        }
        OAuthError::IdToken(_) | OAuthError::MissingIdToken => {
            LoginError::Invalid("the provider's ID token was refused")
        }
        OAuthError::IssuerMismatch | OAuthError::MissingIssuer => {
            LoginError::Invalid("the answer did not come from the provider")
        }
        _ => LoginError::Invalid("the provider's answer"),
    }
}

fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = header::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

impl Login for UpstreamLogin {
    fn start(&self, context: LoginContext) -> BoxFuture<'_, Result<Response<Body>, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let mapped = up.mapped(&context.scopes);
            let on_file = match &context.subject {
                Some(subject) => up.load(subject).await.ok().flatten(),
                None => None,
            };
            let mut scopes: BTreeSet<String> = up.base_scopes.iter().cloned().collect();
            let mut extra: Vec<(String, String)> = up.quirks.authorize_params.clone();
            match &on_file {
                Some(held) if up.quirks.include_granted_scopes => {
                    // Only what is added; the provider keeps the rest.
                    let have: BTreeSet<&String> = held.scopes().iter().collect();
                    scopes.extend(mapped.into_iter().filter(|s| !have.contains(s)));
                    extra.push(("include_granted_scopes".into(), "true".into()));
                }
                Some(held) => {
                    scopes.extend(mapped);
                    scopes.extend(held.scopes().iter().cloned());
                }
                None => scopes.extend(mapped),
            }
            if up.quirks.prompt_consent_without_refresh_token
                && on_file.as_ref().is_none_or(|c| c.refresh_token().is_none())
            {
                extra.push(("prompt".into(), "consent".into()));
            }
            let scopes: Vec<String> = scopes.into_iter().collect();
            let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let extra_refs: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            // The binding carries our pending id and what was asked for
            // (sealed with the pending entry, never sent upstream).
            let binding = format!("{} {}", context.pending, scopes.join(" "));
            let request = up
                .client
                .start_sign_in(&binding, &scope_refs, &extra_refs)
                .await
                .map_err(|e| login_error(&e))?;
            Ok(see_other(&request.url))
        })
    }

    fn finish(
        &self,
        fields: HashMap<String, String>,
    ) -> BoxFuture<'_, Result<SignedIn, LoginError>> {
        Box::pin(async move {
            let unchecked = |_: &str| -> BoxFuture<'_, bool> { Box::pin(std::future::ready(true)) };
            self.finish_checked(fields, &unchecked).await
        })
    }

    fn finish_checked<'a>(
        &'a self,
        fields: HashMap<String, String>,
        check: &'a BindingCheck<'a>,
    ) -> BoxFuture<'a, Result<SignedIn, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter())
                .finish();
            // The browser is checked before the provider's code is redeemed
            // or anything is written (RFC 9700 §4.7.1).
            let (binding, tokens) = up
                .client
                .finish_sign_in_checked(&query, |binding| {
                    let pending = binding.split_once(' ').map_or(binding, |(p, _)| p);
                    check(pending)
                })
                .await
                .map_err(|e| login_error(&e))?;
            let (pending, asked) = binding.split_once(' ').unwrap_or((binding.as_str(), ""));
            let subject = up.subject_of(&tokens).await?;
            let on_file = up
                .load(&subject)
                .await
                .map_err(|()| LoginError::Unavailable)?;
            let mut scopes: BTreeSet<String> = if tokens.scopes.is_empty() {
                // RFC 6749 section 5.1: no scope in the answer means as asked.
                asked
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            } else {
                tokens.scopes.iter().cloned().collect()
            };
            if up.quirks.include_granted_scopes
                && let Some(held) = &on_file
            {
                scopes.extend(held.scopes().iter().cloned());
            }
            // A provider that does not issue a new refresh token on every
            // sign-in (Google without a consent screen) keeps the one on file.
            let kept = on_file.as_ref().and_then(|c| c.refresh_token().cloned());
            let credential = credential(&tokens, scopes, kept);
            up.store(&subject, credential)
                .await
                .map_err(|()| LoginError::Unavailable)?;
            tracing::info!(target: AUDIT, event = "upstream_signed_in", provider = %up.display, subject = subject.as_str());
            Ok(SignedIn::new(pending.to_owned(), None, subject))
        })
    }

    fn consent_first(&self) -> bool {
        true
    }

    fn form_targets(&self) -> Vec<String> {
        crate::pages::csp_source(&self.inner.client.provider().authorization_endpoint)
            .into_iter()
            .collect()
    }

    fn provider_name(&self) -> Option<&str> {
        Some(&self.inner.display)
    }

    fn covers<'a>(
        &'a self,
        subject: &'a UserId,
        scopes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, LoginError>> {
        Box::pin(async move {
            let up = &self.inner;
            let Some(held) = up
                .load(subject)
                .await
                .map_err(|()| LoginError::Unavailable)?
            else {
                return Ok(false);
            };
            let have: BTreeSet<&String> = held.scopes().iter().collect();
            Ok(up.usable(&held) && up.mapped(scopes).iter().all(|s| have.contains(s)))
        })
    }

    fn forget<'a>(&'a self, subject: &'a UserId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let up = &self.inner;
            if let Ok(Some(held)) = up.load(subject).await {
                let revocable = up.client.provider().revocation_endpoint.is_some()
                    && held.refresh_token().is_some();
                if revocable
                    && let Err(e) = up
                        .client
                        .revoke(&token_set(&held), TokenKind::Refresh)
                        .await
                {
                    tracing::warn!(target: AUDIT, event = "upstream_revoke_failed", provider = %up.display, subject = subject.as_str(), reason = %e);
                }
                up.delete(subject).await;
                tracing::info!(target: AUDIT, event = "upstream_forgotten", provider = %up.display, subject = subject.as_str());
            }
        })
    }

    fn forget_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let vault = self.inner.vault.clone();
            let users = tokio::task::spawn_blocking(move || vault.users())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for user in users {
                self.forget(&user).await;
            }
        })
    }
}
