// Unpacking a function's zip archive into the task root, refusing anything that could reach
// outside it or exhaust the pod: an entry named with an absolute path or a ".." part (zip slip),
// a symbolic link whose target leaves the root, an entry inside such a link, more entries than
// LAMBDALET_CODE_MAX_FILES, more than 250 MiB unpacked (Lambda's limit) counted as written, not
// as declared. Files get 0755 when the archive gives them any execute bit (a `provided`
// runtime's bootstrap must stay executable), else 0644; directories get 0755.

package main

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Lambda's limit on a function's unpacked code: 262,144,000 bytes.
const maxUnzippedBytes = 250 << 20

// maxLinkTarget bounds a symbolic link's target, as PATH_MAX does.
const maxLinkTarget = 4096

type unzipLimits struct {
	maxFiles int
	maxBytes int64
}

// unzipped counts what an archive unpacked to.
type unzipped struct {
	entries int
	bytes   int64
}

// unpack unpacks the zip archive r (size bytes) into root, an empty directory.
func unpack(r io.ReaderAt, size int64, root string, lim unzipLimits) (unzipped, error) {
	// archive/zip keeps every entry of the central directory in memory and trusts no count in
	// the archive: count the entries' headers first, so a bomb of tiny entries is refused cheaply.
	headers, err := countHeaders(io.NewSectionReader(r, 0, size))
	if err != nil {
		return unzipped{}, permanentf("reading the archive: %v", err)
	}
	if headers > int64(lim.maxFiles) {
		return unzipped{}, tooManyFiles(lim.maxFiles)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return unzipped{}, permanentf("not a zip archive: %v", err)
	}
	if len(zr.File) > lim.maxFiles {
		return unzipped{}, tooManyFiles(lim.maxFiles)
	}
	var declared uint64
	for _, f := range zr.File {
		declared += min(f.UncompressedSize64, uint64(lim.maxBytes)+1) // no overflow: ≤ 1e6 × 2^28
	}
	if declared > uint64(lim.maxBytes) {
		return unzipped{}, tooBig(lim.maxBytes)
	}
	u := unpacker{root: root, lim: lim, links: map[string]bool{}}
	for _, f := range zr.File {
		if err := u.entry(f); err != nil {
			return unzipped{}, err
		}
	}
	return u.done, nil
}

func tooManyFiles(limit int) error {
	return permanentf("the archive holds more than %d entries (LAMBDALET_CODE_MAX_FILES)", limit)
}

func tooBig(limit int64) error {
	return permanentf("the archive unpacks to more than %d bytes", limit)
}

type unpacker struct {
	root  string
	lim   unzipLimits
	links map[string]bool // the symbolic links made so far, by relative path
	done  unzipped
}

func (u *unpacker) entry(f *zip.File) error {
	rel, err := entryPath(f.Name)
	if err != nil {
		return permanentf("unsafe entry %q in the archive: %v", f.Name, err)
	}
	if link, ok := underLink(rel, u.links); ok {
		return permanentf("unsafe entry %q in the archive: it is inside the symbolic link %q", f.Name, link)
	}
	u.done.entries++
	mode := f.Mode()
	dst := filepath.Join(u.root, filepath.FromSlash(rel))
	switch {
	case strings.HasSuffix(f.Name, "/") || mode.IsDir():
		return wrapFS(f.Name, mkdirs(u.root, rel))
	case rel == "":
		return permanentf("unsafe entry %q in the archive: it names the root", f.Name)
	case mode&fs.ModeSymlink != 0:
		return u.symlink(f, rel, dst)
	case !mode.IsRegular():
		return permanentf("entry %q in the archive is a %v, not a file, directory or symbolic link", f.Name, mode.Type())
	}
	if err := mkdirs(u.root, path.Dir(rel)); err != nil {
		return wrapFS(f.Name, err)
	}
	src, err := f.Open()
	if err != nil {
		return permanentf("entry %q in the archive: %v", f.Name, err)
	}
	defer src.Close()
	perm := fileMode(mode)
	// O_EXCL|O_NOFOLLOW: never write through a link, nor over an earlier entry.
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return wrapFS(f.Name, err)
	}
	n, err := io.Copy(out, io.LimitReader(src, u.lim.maxBytes-u.done.bytes+1))
	u.done.bytes += n
	if err == nil {
		err = out.Chmod(perm) // whatever the umask took away
	}
	if closeErr := out.Close(); err == nil {
		err = closeErr
	}
	switch {
	case u.done.bytes > u.lim.maxBytes:
		return tooBig(u.lim.maxBytes)
	case errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm):
		return permanentf("entry %q in the archive: %v", f.Name, err)
	}
	return wrapFS(f.Name, err)
}

func (u *unpacker) symlink(f *zip.File, rel, dst string) error {
	src, err := f.Open()
	if err != nil {
		return permanentf("entry %q in the archive: %v", f.Name, err)
	}
	defer src.Close()
	target, err := io.ReadAll(io.LimitReader(src, maxLinkTarget+1))
	if err != nil {
		return permanentf("entry %q in the archive: %v", f.Name, err)
	}
	if len(target) > maxLinkTarget {
		return permanentf("unsafe entry %q in the archive: a symbolic link target over %d bytes", f.Name, maxLinkTarget)
	}
	if err := linkTargetInside(rel, string(target)); err != nil {
		return permanentf("unsafe entry %q in the archive: %v", f.Name, err)
	}
	u.done.bytes += int64(len(target))
	if u.done.bytes > u.lim.maxBytes {
		return tooBig(u.lim.maxBytes)
	}
	if err := mkdirs(u.root, path.Dir(rel)); err != nil {
		return wrapFS(f.Name, err)
	}
	u.links[rel] = true
	return wrapFS(f.Name, os.Symlink(string(target), dst))
}

func wrapFS(name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return permanentf("entry %q is in the archive twice", name)
	}
	return permanentf("unpacking %q: %v", name, err)
}

// entryPath turns the name of an archive entry into a clean relative slash path inside the
// root ("" for the root itself): "./lib//a.py" -> "lib/a.py". It refuses what could name a
// place outside the root, or be read differently elsewhere: "/etc/x", "a/../../x", "..\x".
func entryPath(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("an empty name")
	case strings.ContainsAny(name, "\x00\\"):
		return "", errors.New("a NUL or backslash in the name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("an absolute path")
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", errors.New(`a ".." in the path`)
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}

// underLink finds a symbolic link among rel and its parent directories: nothing is unpacked
// through a link, which could lead anywhere once links are chained.
func underLink(rel string, links map[string]bool) (string, bool) {
	for p := rel; p != "" && p != "."; p = path.Dir(p) {
		if links[p] {
			return p, true
		}
	}
	return "", false
}

// linkTargetInside checks the target of the link at rel (a clean relative path). The target
// must be relative, with any ".." parts only at its start, and end up inside the root: from
// "node_modules/.bin/tsc", "../typescript/bin/tsc" is fine; "../../../etc/passwd" and
// "/etc/passwd" are not, nor "x/../.." (x may itself be a link elsewhere, so ".." after a name
// cannot be resolved by looking at the path alone).
func linkTargetInside(rel, target string) error {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, '\x00') {
		return errors.New("a symbolic link to an absolute or empty path")
	}
	depth := strings.Count(rel, "/") // directories between the root and the link
	named := false
	for _, p := range strings.Split(target, "/") {
		switch {
		case p == "" || p == ".":
		case p == ".." && named:
			return fmt.Errorf("a symbolic link target with \"..\" after a name: %q", target)
		case p == "..":
			if depth--; depth < 0 {
				return fmt.Errorf("a symbolic link out of the root: %q", target)
			}
		default:
			named = true
		}
	}
	return nil
}

// fileMode is the permission of an unpacked file: executable if the archive says so.
func fileMode(m fs.FileMode) fs.FileMode {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// centralHeader starts each entry's record in a zip's central directory.
var centralHeader = []byte("PK\x01\x02")

// countHeaders counts the central-directory signatures in r: at least the number of entries
// archive/zip would read, whatever the archive claims. An archive stored uncompressed inside it
// adds its own entries to the count.
func countHeaders(r io.Reader) (int64, error) {
	var c headerCounter
	_, err := io.Copy(&c, r)
	return c.n, err
}

// headerCounter counts centralHeader in what is written to it, across writes: the last three
// bytes of each write are kept to find a signature split between writes.
type headerCounter struct {
	n    int64
	tail []byte
}

func (c *headerCounter) Write(p []byte) (int, error) {
	keep := len(centralHeader) - 1
	if len(c.tail) > 0 {
		// Those that begin in the tail and end in p (the tail holds no whole signature).
		c.n += int64(bytes.Count(append(c.tail, p[:min(len(p), keep)]...), centralHeader))
	}
	c.n += int64(bytes.Count(p, centralHeader))
	last := p
	if len(p) < keep {
		last = append(c.tail, p...)
	}
	c.tail = append([]byte(nil), last[max(0, len(last)-keep):]...)
	return len(p), nil
}

// mkdirs makes the directory rel (a clean relative slash path, "." or "" for root itself) and its
// parents under root, 0755 whatever the umask, passing through nothing but directories.
func mkdirs(root, rel string) error {
	dir := root
	for _, p := range strings.Split(rel, "/") {
		if p == "" || p == "." {
			continue
		}
		dir = filepath.Join(dir, p)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			err = os.Chmod(dir, 0o755)
		} else if errors.Is(err, fs.ErrExist) {
			var info fs.FileInfo
			if info, err = os.Lstat(dir); err == nil && !info.IsDir() {
				err = fmt.Errorf("%s is not a directory", dir)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// clearDir removes everything inside dir (made if missing), not dir itself: the task root is a
// mount point in the pod. Left over from an earlier round, or an earlier run of the agent in the
// same pod, nothing in it is anyone else's.
func clearDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
