package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/store/storetest"
)

// The browser harness: Debian's Chromium, driven through chromedp, with
// client certificates in the NSS database of each profile and chosen by
// the AutoSelectCertificateForUrls policy. Headless Chromium has no
// certificate picker to click: without the policy a page that asks for a
// certificate never loads.
//
// Each browser is one device: its own HOME (Chromium on Linux reads
// certificates from $HOME/.pki/nssdb) and its own --user-data-dir. The
// portal's CA is trusted in that database, so pages load over real TLS
// without --ignore-certificate-errors. A laptop starts with a client
// certificate from "gatehouse cert issue"; a phone starts without one and
// is shown at a phone's width.

const (
	// browserStep bounds one step in the browser (a page load, a click
	// and the page it leads to, a check): nothing waits forever.
	browserStep = 30 * time.Second

	// Widths every page is checked at: a laptop, and a phone (390 CSS
	// pixels, an iPhone 12 to 15).
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844

	// certificatePolicyFile is the policy that makes Chromium present a
	// certificate to the test portals without asking. Chromium reads
	// managed policies only from this directory; .ci/run writes the same
	// file.
	certificatePolicyFile = "/etc/chromium/policies/managed/gatehouse-tests.json"
	// certificatePolicy selects the client certificate for any port of
	// https://localhost. Each profile's database holds at most one, and
	// the portal names its client CAs in the handshake.
	certificatePolicy = `{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://localhost:*\",\"filter\":{}}"]}` + "\n"
)

// browserTools are the programs the browser tests run.
type browserTools struct {
	chromium, certutil, pk12util string
}

// needBrowserTools finds Chromium and the NSS tools, and makes sure the
// certificate policy is in place (writing it when this process may). A
// test that cannot have them skips, or fails under CI=true.
func needBrowserTools(t *testing.T) browserTools {
	t.Helper()
	find := func(what, pkg string, names ...string) string {
		for _, n := range names {
			if path, err := exec.LookPath(n); err == nil {
				return path
			}
		}
		storetest.NeedService(t, fmt.Sprintf("the browser tests need %s (apt-get install %s)", what, pkg))
		return ""
	}
	tools := browserTools{
		chromium: find("Chromium", "chromium", "chromium", "chromium-browser"),
		certutil: find("certutil", "libnss3-tools", "certutil"),
		pk12util: find("pk12util", "libnss3-tools", "pk12util"),
	}
	if err := installCertificatePolicy(); err != nil {
		storetest.NeedService(t, fmt.Sprintf("Chromium's certificate policy is missing and cannot be written (%v): as root, write %s with %s", err, certificatePolicyFile, strings.TrimSpace(certificatePolicy)))
	}
	return tools
}

var policyOnce struct {
	sync.Once
	err error
}

// installCertificatePolicy writes certificatePolicyFile unless it already
// holds the policy.
func installCertificatePolicy() error {
	policyOnce.Do(func() {
		if b, err := os.ReadFile(certificatePolicyFile); err == nil && string(b) == certificatePolicy {
			return
		}
		if err := os.MkdirAll(filepath.Dir(certificatePolicyFile), 0o755); err != nil {
			policyOnce.err = err
			return
		}
		policyOnce.err = os.WriteFile(certificatePolicyFile, []byte(certificatePolicy), 0o644)
	})
	return policyOnce.err
}

// pageReport gathers what the page checks found, for the summary at the
// end of a test: one line per page that is too wide or has a field
// without a label.
type pageReport struct {
	dir string // where the screenshots go

	mu       sync.Mutex
	checked  int
	problems []string
}

// newPageReport makes the screenshot directory (kept after the test, as
// its artifacts) and names it in the log.
func newPageReport(t *testing.T) *pageReport {
	t.Helper()
	dir, err := os.MkdirTemp("", "gatehouse-browser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every page, at %d and %d pixels wide: %s", desktopWidth, phoneWidth, dir)
	r := &pageReport{dir: dir}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Logf("%d pages checked at %d and %d pixels; screenshots in %s", r.checked, desktopWidth, phoneWidth, dir)
		if len(r.problems) > 0 {
			t.Logf("pages with problems:\n  %s", strings.Join(r.problems, "\n  "))
		}
	})
	return r
}

func (r *pageReport) add(checked int, problem string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked += checked
	if problem != "" {
		r.problems = append(r.problems, problem)
	}
}

// browser is one device: a Chromium with its own profile and NSS
// database, and one tab.
type browser struct {
	name   string // "alice-laptop", "phone": in file names and messages
	p      *portal
	tools  browserTools
	report *pageReport
	phone  bool   // opens pages at the phone's width
	home   string // HOME; the NSS database is HOME/.pki/nssdb
	data   string // --user-data-dir
	log    string // Chromium's output
	logf   *os.File

	tab      context.Context // the tab; steps derive from it
	stop     context.CancelFunc
	stopExec context.CancelFunc
}

// newBrowser makes a profile whose NSS database trusts the portal's CA,
// imports a client certificate into it when p12 is not empty, and starts
// Chromium. The browser is closed when the test ends.
func newBrowser(t *testing.T, p *portal, tools browserTools, report *pageReport, name string, phone bool, p12, p12Password string) *browser {
	t.Helper()
	dir := t.TempDir()
	b := &browser{
		name: name, p: p, tools: tools, report: report, phone: phone,
		home: filepath.Join(dir, "home"),
		data: filepath.Join(dir, "profile"),
		log:  filepath.Join(dir, "chromium.log"),
	}
	nssdb := filepath.Join(b.home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	b.nss(t, tools.certutil, "-N", "--empty-password")
	b.nss(t, tools.certutil, "-A", "-n", "Gatehouse test CA", "-t", "C,,", "-i", filepath.Join(p.Data, "pki", "ca.crt"))
	if p12 != "" {
		b.importP12(t, p12, p12Password)
	}
	b.start(t)
	t.Cleanup(func() { b.close(t) })
	return b
}

// nss runs an NSS tool on the profile's database.
func (b *browser) nss(t *testing.T, tool string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	args = append([]string{"-d", "sql:" + filepath.Join(b.home, ".pki", "nssdb")}, args...)
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
}

// importP12 puts a PKCS#12 file (certificate and key) into the profile's
// NSS database, as a person does from Chromium's certificate settings.
// Chromium reads the database at start: restart a running browser.
func (b *browser) importP12(t *testing.T, file, password string) {
	t.Helper()
	b.nss(t, b.tools.pk12util, "-i", file, "-W", password)
}

// start runs Chromium with the launch flags that work on these machines
// and opens one tab, within browserStep.
func (b *browser) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(b.tools.chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(b.data),
		chromedp.WindowSize(desktopWidth, desktopHeight),
		chromedp.Env("HOME=" + b.home),
		chromedp.CombinedOutput(logFile),
	}
	execCtx, stopExec := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, stop := chromedp.NewContext(execCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err = <-started:
	case <-time.After(browserStep):
		err = fmt.Errorf("no answer within %v", browserStep)
	}
	if err != nil {
		stop()
		stopExec()
		logFile.Close()
		t.Fatalf("start Chromium for %s: %v\n%s", b.name, err, b.output())
	}
	b.tab, b.stop, b.stopExec, b.logf = tab, stop, stopExec, logFile
	b.setWidth(t, b.width())
}

// close shuts Chromium down and waits for it, so that its profile can be
// removed or used again.
func (b *browser) close(t *testing.T) {
	t.Helper()
	if b.tab == nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("close %s's Chromium: %v", b.name, err)
	}
	b.stop()
	b.stopExec()
	b.logf.Close()
	b.tab = nil
}

// output is the end of what Chromium printed, without the lines about
// D-Bus, which these machines do not run.
func (b *browser) output() string {
	out, _ := os.ReadFile(b.log)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(l, "dbus") {
			lines = append(lines, l)
		}
	}
	return fmt.Sprintf("last lines of Chromium's output (%s):\n%s", b.log, strings.Join(lines[max(0, len(lines)-15):], "\n"))
}

// restart closes the browser and starts it again on the same profile, as
// a person does after importing a certificate.
func (b *browser) restart(t *testing.T) {
	t.Helper()
	b.close(t)
	b.start(t)
}

// width is the browser's natural width.
func (b *browser) width() int {
	if b.phone {
		return phoneWidth
	}
	return desktopWidth
}

// setWidth makes the page width px wide: a desktop window, or a phone
// (mobile viewport, touch) at phoneWidth.
func (b *browser) setWidth(t *testing.T, px int) {
	t.Helper()
	action := chromedp.EmulateViewport(desktopWidth, desktopHeight)
	if px == phoneWidth {
		action = chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	b.do(t, fmt.Sprintf("set the width to %d", px), action)
}

// do runs actions as one step of at most browserStep.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, what, err)
	}
}

// fail ends the test with where the browser was, and keeps a screenshot
// of what it showed.
func (b *browser) fail(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	shot := filepath.Join(b.report.dir, fmt.Sprintf("FAILED-%s-%d.png", b.name, time.Now().UnixNano()))
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		os.WriteFile(shot, png, 0o644)
	}
	t.Fatalf("%s: %s at %s: %v (screenshot %s)\n%s", b.name, what, where, err, shot, b.output())
}

// open loads path and returns the HTTP status of the page.
func (b *browser) open(t *testing.T, path string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.p.URL+path))
	if err != nil {
		b.fail(t, "open "+path, err)
	}
	return resp.Status
}

// fill empties the field sel and types value into it. The field is
// emptied in the page rather than with chromedp.Clear, which fails on an
// empty textarea (it looks for the text node inside).
func (b *browser) fill(t *testing.T, sel, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = ''; return true; })()`, sel)
	if !eval[bool](t, b, "empty "+sel, js) {
		b.fail(t, "fill "+sel, errors.New("no such element"))
	}
	b.do(t, "fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// tick makes sure the checkbox or radio button sel is chosen, clicking
// it as a person would when it is not.
func (b *browser) tick(t *testing.T, sel string) {
	t.Helper()
	b.setTicked(t, sel, true)
}

// untick makes sure the checkbox sel is not chosen, clicking it as a
// person would when it is (a form may come with a box ticked).
func (b *browser) untick(t *testing.T, sel string) {
	t.Helper()
	b.setTicked(t, sel, false)
}

func (b *browser) setTicked(t *testing.T, sel string, want bool) {
	t.Helper()
	what := map[bool]string{true: "tick ", false: "untick "}[want] + sel
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.checked : null; })()`, sel)
	checked := eval[*bool](t, b, "look at "+sel, js)
	if checked == nil {
		b.fail(t, what, errors.New("no such element"))
	}
	if *checked != want {
		b.do(t, what, chromedp.Click(chromedp.CSS(sel)))
	}
}

// click clicks sel, which leads to another page, waits for that page and
// returns its HTTP status (after redirects).
func (b *browser) click(t *testing.T, sel string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.fail(t, "click "+sel, err)
	}
	return resp.Status
}

// path is the path and query of the page the browser shows.
func (b *browser) path(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.fail(t, "read the location", err)
	}
	return strings.TrimPrefix(loc, b.p.URL)
}

// eval evaluates a JavaScript expression in the page (DevTools runs it,
// so the portal's CSP does not apply) and decodes its value.
func eval[T any](t *testing.T, b *browser, what, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

// text is the text of the first element that matches sel, as shown.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : null; })()`, sel)
	s := eval[*string](t, b, "read "+sel, js)
	if s == nil {
		b.fail(t, "read "+sel, errors.New("no such element"))
	}
	return strings.TrimSpace(*s)
}

// attr is an attribute of the first element that matches sel.
func (b *browser) attr(t *testing.T, sel, name string) string {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.getAttribute(%q) : null; })()`, sel, name)
	s := eval[*string](t, b, fmt.Sprintf("read %s of %s", name, sel), js)
	if s == nil {
		b.fail(t, fmt.Sprintf("read %s of %s", name, sel), errors.New("no such element or attribute"))
	}
	return *s
}

// wantText checks that the page's visible text contains each of texts,
// whatever their case.
func (b *browser) wantText(t *testing.T, texts ...string) {
	t.Helper()
	body := eval[string](t, b, "read the page", `document.body.innerText`)
	for _, s := range texts {
		// Stylesheets may capitalise a first letter (innerText shows it).
		if !strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
			t.Errorf("%s: %s does not show %q; it shows:\n%s", b.name, b.path(t), s, body)
		}
	}
}

// wantStatusCode checks the HTTP status of the page the browser shows.
func (b *browser) wantStatusCode(t *testing.T, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %s answered %d, want %d", b.name, b.path(t), got, want)
	}
}

// pageCheckJS measures the page at the width it is shown: the document's
// width against the window's, the elements that stick out (outermost
// first, not those inside a scrolling box), and the form fields that no
// label names.
const pageCheckJS = `(() => {
  const limit = Math.min(window.innerWidth, %d);
  const doc = document.documentElement;
  const describe = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    [...e.classList].map(c => '.' + c).join('') +
    (e.name ? '[name=' + e.name + ']' : '');
  // Whether a box that scrolls or clips holds e: an absolutely positioned
  // element escapes every such box below its containing block.
  const clipped = e => {
    let pos = getComputedStyle(e).position;
    for (let a = e.parentElement; a && a !== document.body && a !== doc; a = a.parentElement) {
      const st = getComputedStyle(a);
      const holds = pos === 'fixed' ? false : pos === 'absolute' ? st.position !== 'static' : true;
      if (!holds) continue;
      if (st.overflowX !== 'visible') return true;
      pos = st.position;
    }
    return pos === 'fixed';
  };
  const out = new Set();
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > limit + 0.5 && !clipped(e)) out.add(e);
  }
  const wide = [];
  for (const e of out) {
    let inner = false;
    for (let a = e.parentElement; a; a = a.parentElement) if (out.has(a)) { inner = true; break; }
    if (!inner) wide.push(describe(e) + ' to ' + Math.round(e.getBoundingClientRect().right) + 'px');
  }
  const skip = new Set(['hidden', 'submit', 'button', 'reset', 'image']);
  const unlabelled = [];
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (e.tagName === 'INPUT' && skip.has(e.type)) continue;
    if ((e.getAttribute('aria-label') || '').trim()) continue;
    const by = (e.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
      .map(id => document.getElementById(id)).filter(l => l && l.textContent.trim());
    if (by.length) continue;
    if ([...(e.labels || [])].some(l => l.textContent.trim())) continue;
    unlabelled.push(describe(e));
  }
  return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, wide: wide.slice(0, 5), unlabelled};
})()`

// pageCheck is what pageCheckJS finds.
type pageCheck struct {
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	Wide        []string `json:"wide"`
	Unlabelled  []string `json:"unlabelled"`
}

// checkPage looks at the page the browser shows, at the desktop's width
// and at the phone's: nothing wider than the screen, every field
// labelled. It keeps a full-page screenshot NAME-WIDTH.png of each, and
// reports each problem once per page.
func (b *browser) checkPage(t *testing.T, name string) {
	t.Helper()
	var tooWide, unlabelled []string
	for _, px := range []int{desktopWidth, phoneWidth} {
		b.setWidth(t, px)
		c := eval[pageCheck](t, b, "measure the page", fmt.Sprintf(pageCheckJS, px))
		if c.ScrollWidth > min(c.InnerWidth, px) {
			tooWide = append(tooWide, fmt.Sprintf("%dpx wide at %dpx (%s)", c.ScrollWidth, px, strings.Join(c.Wide, ", ")))
		}
		for _, u := range c.Unlabelled {
			if !slices.Contains(unlabelled, u) {
				unlabelled = append(unlabelled, u)
			}
		}
		ctx, cancel := context.WithTimeout(b.tab, browserStep)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.fail(t, "take a screenshot", err)
		}
		if err := os.WriteFile(filepath.Join(b.report.dir, fmt.Sprintf("%s-%d.png", name, px)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.setWidth(t, b.width())
	path := b.path(t)
	var problems []string
	if len(tooWide) > 0 {
		t.Errorf("page %s (%s) is wider than the screen: %s", name, path, strings.Join(tooWide, "; "))
		problems = append(problems, "wider than the screen: "+strings.Join(tooWide, "; "))
	}
	if len(unlabelled) > 0 {
		t.Errorf("page %s (%s) has fields without a label: %s", name, path, strings.Join(unlabelled, ", "))
		problems = append(problems, "fields without a label: "+strings.Join(unlabelled, ", "))
	}
	problem := ""
	if len(problems) > 0 {
		problem = fmt.Sprintf("%s (%s): %s", name, path, strings.Join(problems, "; "))
	}
	b.report.add(1, problem)
}

// dataURL decodes a base64 data: URL, as the download link of a page
// that hands over a file holds it.
func dataURL(t *testing.T, u string) []byte {
	t.Helper()
	rest, ok := strings.CutPrefix(html.UnescapeString(u), "data:")
	meta, payload, found := strings.Cut(rest, ",")
	if !ok || !found || !strings.HasSuffix(meta, ";base64") {
		t.Fatalf("the download link is not a base64 data: URL: %.80q", u)
	}
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("the download link's data does not decode: %v", err)
	}
	return b
}

// session is GET /api/session as the browser gets it.
func (b *browser) session(t *testing.T) sessionInfo {
	t.Helper()
	b.open(t, "/api/session")
	// Chromium shows JSON in a <pre>, with its own controls around it.
	raw := eval[string](t, b, "read /api/session", `(document.querySelector('pre') || document.body).innerText`)
	var s sessionInfo
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf("%s: /api/session is not JSON (%v): %s", b.name, err, raw)
	}
	return s
}
