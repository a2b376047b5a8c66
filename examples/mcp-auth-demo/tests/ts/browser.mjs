// A scripted browser for the interop scripts: cookies kept by hand (the
// server's are `Secure`, which fetch keeps off plain-http loopback and a
// browser does not), forms read from the HTML, no redirects followed.
export function browser() {
  const cookies = new Map();
  async function load(target, form) {
    const response = await fetch(target, {
      method: form ? "POST" : "GET",
      redirect: "manual",
      headers: {
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const at = pair.indexOf("=");
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return { status: response.status, location: response.headers.get("location"), html: await response.text() };
  }
  return { load };
}

// A hidden field's value in a page.
export function field(html, name) {
  const match = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return match ? match[1] : undefined;
}
