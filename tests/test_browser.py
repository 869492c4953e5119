"""The browser test infrastructure itself (tests/browser.py): headless Chromium at desktop and phone widths,
axe-core under a strict Content-Security-Policy, full-page screenshots, and a forged cross-site POST."""

from __future__ import annotations

from aiohttp import web
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import OTHER_SITE, SITE, Browser, axe_source, describe, png_size, serious, serving

CSP = "default-src 'self'; script-src 'none'"

# Inline style attributes are CSP-blocked too (style-src falls back to default-src), hence a stylesheet.
HEAD = '<meta charset="utf-8"><meta name="viewport" content="width=device-width"><link rel="stylesheet" href="/s.css">'
STYLE = "body { margin: 0 } .tall { height: 3000px } .wide { width: 600px }"
GOOD = (f'<!doctype html><html lang="en"><head>{HEAD}<title>Accessible page</title></head><body><main>'
        '<h1>Look up an address</h1><form method="get" action="/"><label for="q">IP address</label>'
        '<input id="q" name="q" type="text"><button type="submit">Look up</button></form>'
        '<script>document.title = "script ran"</script>'  # the CSP must stop this
        '<div class="tall">tall</div></main></body></html>')
BROKEN = (f'<!doctype html><html lang="en"><head>{HEAD}<title>Broken page</title></head><body><main>'
          '<h1>Broken</h1><img src="/logo.png"><input name="q" type="text"></main></body></html>')
NO_VIEWPORT = '<!doctype html><html lang="en"><head><title>Desktop only</title></head><body><p>wide</p></body></html>'
WIDE = (f'<!doctype html><html lang="en"><head>{HEAD}<title>Wide</title></head><body>'
        '<div class="wide">wide</div></body></html>')


def pages_app() -> web.Application:
    def page(html: str):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": CSP})
        return handler

    async def style(request: web.Request) -> web.Response:
        return web.Response(text=STYLE, content_type="text/css")

    app = web.Application()
    app.router.add_get("/s.css", style)
    for path, html in (("/", GOOD), ("/broken", BROKEN), ("/no-viewport", NO_VIEWPORT), ("/wide", WIDE)):
        app.router.add_get(path, page(html))
    return app


def test_axe_runs_under_a_strict_csp_and_tells_an_accessible_page_from_a_broken_one():
    axe_source()  # skip (or under CI fail) before starting anything when axe-core is not installed
    with serving(pages_app()) as http, Browser.desktop() as b:
        base = f"http://{SITE}:{http.port}"
        b.get(base + "/")
        assert b.driver.execute_script("return window.innerWidth") == 1280
        assert b.driver.title == "Accessible page", "the page's inline script ran: the CSP is not in force"
        assert any("Content Security Policy" in m["message"] for m in b.console()), "no CSP report in the console"

        violations = b.axe()
        assert serious(violations) == [], describe(serious(violations))

        b.get(base + "/broken")
        found = serious(b.axe())
        assert {"image-alt", "label"} <= {v["id"] for v in found}, describe(found)
        message = describe(found)
        assert "image-alt [critical]" in message and "img" in message, message
        assert b.processes(), "the browser's processes are not found by its profile"
    assert b.processes() == [], "chromium outlived Browser.close"
    assert not b.profile.exists()


def test_phone_width_screenshots_and_horizontal_overflow(tmp_path):
    with serving(pages_app()) as http, Browser.phone() as b:
        base = f"http://{SITE}:{http.port}"
        b.get(base + "/")
        assert b.driver.execute_script("return [window.innerWidth, matchMedia('(pointer: coarse)').matches]") \
            == [390, True]
        assert b.horizontal_overflow() == 0
        width, height = png_size(b.screenshot(tmp_path / "phone.png"))
        assert width == 390 and height > 3000, (width, height)  # the whole page, not just the 844 px viewport

        b.get(base + "/no-viewport")  # a page without the viewport meta tag is laid out at 980 px on a phone
        assert b.driver.execute_script("return window.innerWidth") == 980

        b.get(base + "/wide")  # zoomed out to fit its 600 px, so innerWidth alone would not tell
        assert b.horizontal_overflow() == 600 - 390
        assert png_size(b.screenshot(tmp_path / "wide.png"))[0] == 600

        b.resize(1280, 900)
        b.get(base + "/")
        assert b.driver.execute_script("return window.innerWidth") == 1280
        assert png_size(b.screenshot(tmp_path / "desktop.png"))[0] == 1280


def test_a_form_posted_from_another_site_is_cross_site_and_carries_no_strict_cookie():
    posts: list[tuple[dict[str, str], dict[str, str]]] = []

    async def login(request: web.Request) -> web.Response:
        page = (f'<!doctype html><html lang="en"><head>{HEAD}<title>Signed in</title></head><body>'
                '<form method="post" action="/change"><input type="hidden" name="reason" value="mine">'
                '<button id="send" type="submit">Send</button></form></body></html>')
        response = web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": CSP})
        response.set_cookie("sid", "s3cret", samesite="Strict", httponly=True, path="/")
        return response

    async def change(request: web.Request) -> web.Response:
        posts.append((dict(request.headers), dict(await request.post())))
        return web.Response(text="<!doctype html><title>Changed</title><p>changed", content_type="text/html")

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_post("/change", change)
    with serving(app, "site-a") as http, Browser() as b:
        a = f"http://{SITE}:{http.port}"
        b.get(a + "/login")
        b.driver.find_element(By.ID, "send").click()
        WebDriverWait(b.driver, 10).until(lambda d: d.title == "Changed")
        headers, form = posts[-1]  # the control: the same request from the site itself has the cookie
        assert (headers.get("Origin"), headers.get("Sec-Fetch-Site"), form) == (a, "same-origin", {"reason": "mine"})
        assert "sid=s3cret" in headers.get("Cookie", "")

        origin = b.post_cross_site(a + "/change", {"reason": "forged"})
        assert origin.startswith(f"http://{OTHER_SITE}:") and origin != a
        assert len(posts) == 2 and b.driver.title == "Changed"
        headers, form = posts[-1]
        assert (headers.get("Origin"), headers.get("Sec-Fetch-Site"), form) == (origin, "cross-site",
                                                                                 {"reason": "forged"})
        assert "sid=" not in headers.get("Cookie", ""), headers.get("Cookie")
