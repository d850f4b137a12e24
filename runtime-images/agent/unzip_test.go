package main

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEntryPath(t *testing.T) {
	cases := []struct {
		name, want string
		ok         bool
	}{
		{"app.py", "app.py", true},
		{"lib/a.py", "lib/a.py", true},
		{"./lib//a.py", "lib/a.py", true},
		{"lib/", "lib", true},
		{"./", "", true},
		{"a..b/c..", "a..b/c..", true},
		{"", "", false},
		{"/etc/passwd", "", false},
		{"../evil.py", "", false},
		{"lib/../../evil.py", "", false},
		{"lib/../a.py", "", false},
		{"..", "", false},
		{`..\evil.py`, "", false},
		{"a\x00b", "", false},
	}
	for _, tc := range cases {
		got, err := entryPath(tc.name)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %q %v, want %q ok=%v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestLinkTargetInside(t *testing.T) {
	cases := []struct {
		link, target string
		ok           bool
	}{
		{"node_modules/.bin/tsc", "../typescript/bin/tsc", true},
		{"lib64", "lib", true},
		{"a/b/c", "../../x", true},
		{"a/b/c", "./d/./e", true},
		{"a/b/c", "../../../x", false},
		{"link", "../outside", false},
		{"link", "/etc/passwd", false},
		{"link", "", false},
		{"a/link", "x/../..", false},
		{"a/link", "x/../y", false},
	}
	for _, tc := range cases {
		if err := linkTargetInside(tc.link, tc.target); (err == nil) != tc.ok {
			t.Errorf("%s -> %s: %v, want ok=%v", tc.link, tc.target, err, tc.ok)
		}
	}
}

func TestUnderLink(t *testing.T) {
	links := map[string]bool{"a/l": true, "top": true}
	cases := map[string]string{"a/l/x": "a/l", "a/l": "a/l", "top/b/c": "top", "a/x": "", "topx": "", "a": ""}
	for rel, want := range cases {
		got, ok := underLink(rel, links)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", rel, got, ok, want)
		}
	}
}

func TestFileMode(t *testing.T) {
	cases := map[fs.FileMode]fs.FileMode{0o755: 0o755, 0o700: 0o755, 0o744: 0o755, 0o001: 0o755, 0o644: 0o644,
		0o666: 0o644, 0o400: 0o644, 0o4755: 0o755, 0: 0o644}
	for in, want := range cases {
		if got := fileMode(in); got != want {
			t.Errorf("%o: %o, want %o", in, got, want)
		}
	}
}

func TestHeaderCounterAcrossWrites(t *testing.T) {
	data := []byte("xxPK\x01\x02PK\x01\x02yPKPK\x01PK\x01\x02z" + strings.Repeat("-", 40) + "PK\x01\x02")
	for size := 1; size <= len(data); size++ {
		var c headerCounter
		for i := 0; i < len(data); i += size {
			_, _ = c.Write(data[i:min(len(data), i+size)])
		}
		if c.n != 4 {
			t.Errorf("writes of %d bytes: %d signatures, want 4", size, c.n)
		}
	}
}

// entry is one entry of a test archive.
type entry struct {
	name   string
	mode   fs.FileMode
	body   string
	method uint16
}

func archive(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: e.method}
		h.SetMode(e.mode)
		f, err := w.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

var roomy = unzipLimits{maxFiles: 100, maxBytes: 1 << 20}

func TestUnpack(t *testing.T) {
	root := filepath.Join(t.TempDir(), "task")
	r := archive(t,
		entry{name: "bootstrap", mode: 0o700, body: "#!/bin/sh\n"},
		entry{name: "app.py", mode: 0o600, body: "x = 1\n", method: zip.Deflate},
		entry{name: "lib/", mode: fs.ModeDir | 0o700},
		entry{name: "lib/deep/mod.py", mode: 0o644, body: "y = 2\n"},
		entry{name: "lib64", mode: fs.ModeSymlink | 0o777, body: "lib"},
		entry{name: "./readme.txt", mode: 0o444, body: "hi"},
	)
	if err := clearDir(root); err != nil {
		t.Fatal(err)
	}
	got, err := unpack(r, r.Size(), root, roomy)
	if err != nil {
		t.Fatal(err)
	}
	if got.entries != 6 || got.bytes != int64(len("#!/bin/sh\nx = 1\ny = 2\nlibhi")) {
		t.Errorf("unpacked %+v", got)
	}
	modes := map[string]fs.FileMode{
		"bootstrap": 0o755, "app.py": 0o644, "lib": fs.ModeDir | 0o755, "lib/deep": fs.ModeDir | 0o755,
		"lib/deep/mod.py": 0o644, "lib64": fs.ModeSymlink | 0o777, "readme.txt": 0o644,
	}
	for name, want := range modes {
		info, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, info.Mode(), want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "lib64", "deep", "mod.py")); err != nil || string(b) != "y = 2\n" {
		t.Errorf("through the link: %q %v", b, err)
	}
}

func TestUnpackRefuses(t *testing.T) {
	file := func(name string) entry { return entry{name: name, mode: 0o644, body: "x"} }
	link := func(name, target string) entry { return entry{name: name, mode: fs.ModeSymlink | 0o777, body: target} }
	cases := []struct {
		what    string
		entries []entry
		lim     unzipLimits
		mention string
	}{
		{"a parent path", []entry{file("../evil.py")}, roomy, `".."`},
		{"a nested parent path", []entry{file("lib/../../evil.py")}, roomy, `".."`},
		{"an absolute path", []entry{file("/tmp/evil.py")}, roomy, "absolute"},
		{"a link out", []entry{link("up", "../..")}, roomy, "out of the root"},
		{"an absolute link", []entry{link("etc", "/etc")}, roomy, "absolute"},
		{"an entry through a link", []entry{link("l", "."), file("l/x")}, roomy, "inside the symbolic link"},
		{"a device", []entry{{name: "dev", mode: fs.ModeDevice | 0o644}}, roomy, "not a file"},
		{"a duplicate", []entry{file("a"), file("a")}, roomy, "twice"},
		{"a file under a file", []entry{file("a"), file("a/b")}, roomy, "not a directory"},
		{"too many entries", []entry{file("a"), file("b"), file("c")}, unzipLimits{2, 1 << 20}, "more than 2 entries"},
		{"too many bytes", []entry{{name: "big", mode: 0o644, body: strings.Repeat("z", 101), method: zip.Deflate}},
			unzipLimits{10, 100}, "more than 100 bytes"},
		{"too many bytes together", []entry{{name: "a", body: strings.Repeat("z", 60)}, {name: "b", body: strings.Repeat("z", 60)}},
			unzipLimits{10, 100}, "more than 100 bytes"},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		root := filepath.Join(dir, "task")
		if err := clearDir(root); err != nil {
			t.Fatal(err)
		}
		r := archive(t, tc.entries...)
		_, err := unpack(r, r.Size(), root, tc.lim)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.what, err, tc.mention)
		}
		if _, err := os.Lstat(filepath.Join(dir, "evil.py")); err == nil {
			t.Errorf("%s: a file was written outside the root", tc.what)
		}
	}
}

func TestUnpackRefusesWhatIsNotAZip(t *testing.T) {
	r := bytes.NewReader([]byte("<html>not found</html>"))
	if _, err := unpack(r, r.Size(), t.TempDir(), roomy); err == nil || !strings.Contains(err.Error(), "not a zip") {
		t.Errorf("error %v", err)
	}
}

func TestClearDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "task")
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := clearDir(root); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(root); err != nil || len(left) != 0 {
		t.Errorf("left %v %v", left, err)
	}
}
