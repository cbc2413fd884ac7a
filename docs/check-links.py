#!/usr/bin/env python3
"""Usage: python3 docs/check-links.py [ROOT]. Check relative markdown links: the file exists; #anchors match a GitHub-style heading slug."""
import re, sys, pathlib, unicodedata
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else '.').resolve()

def slug(h):
    h = re.sub(r'`|\*\*|\*|_{2}', lambda m: '' if m.group() != '_' else '_', h)  # drop markup
    h = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', h)                            # link text only
    h = h.strip().lower()
    out = []
    for ch in h:
        cat = unicodedata.category(ch)
        if ch in ' -_' or cat[0] in 'LN':
            out.append('-' if ch == ' ' else ch)
    return ''.join(out)

def strip_code(text):
    text = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    return re.sub(r'`[^`\n]*`', '', text)

def anchors(path):
    seen, res = {}, set()
    for line in re.sub(r'^```.*?^```', '', path.read_text(), flags=re.S | re.M).split('\n'):
        m = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            s = slug(m.group(1)); n = seen.get(s, 0); seen[s] = n + 1
            res.add(s if n == 0 else f'{s}-{n}')
    return res

bad = 0; count = 0
mds = [p for p in root.rglob('*.md') if not any(x in p.parts for x in ('target', '.git', 'node_modules'))]
for md in sorted(mds):
    for m in re.finditer(r'\]\(([^)\s]+)\)', strip_code(md.read_text())):
        link = m.group(1)
        if re.match(r'[a-z]+:', link): continue
        count += 1
        path, _, frag = link.partition('#')
        target = (md.parent / path).resolve() if path else md
        rel = md.relative_to(root)
        if not target.exists():
            print(f'{rel}: missing file: {link}'); bad += 1; continue
        if frag and target.suffix == '.md' and frag not in anchors(target):
            print(f'{rel}: missing anchor: {link}'); bad += 1
print(f'{count} relative links checked, {bad} broken')
sys.exit(1 if bad else 0)
