"""C source as the lint tests see it: code and comments apart.

split() blanks comments and the insides of string and character literals
(keeping every newline, so line numbers hold) and returns the comments
with their line numbers.  Not a C parser: enough for grep-like rules.
"""
import re


def split(text):
    """(code, [(line, comment)]): code with comments and literals blanked."""
    code = []
    comments = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if text.startswith('/*', i) or text.startswith('//', i):
            end = text.find('*/', i + 2) + 2 if c == '/' and \
                text[i + 1] == '*' else text.find('\n', i)
            if end < 2 or end == -1:
                end = n
            body = text[i:end]
            comments.append((line, body))
            code.append(re.sub(r'[^\n]', ' ', body))
            line += body.count('\n')
            i = end
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            code.append(c + ' ' * (min(j, n) - i - 1) + c)
            i = j + 1
        else:
            if c == '\n':
                line += 1
            code.append(c)
            i += 1
    return ''.join(code), comments


def drop_preprocessor(code):
    """code with directive lines (and their continuations) blanked."""
    out = []
    cont = False
    for ln in code.split('\n'):
        if cont or ln.lstrip().startswith('#'):
            cont = ln.rstrip().endswith('\\')
            out.append('')
        else:
            out.append(ln)
    return '\n'.join(out)


def functions_by_line(code):
    """For each line (1-based list index), the function defined around it.

    House style puts a definition's opening brace alone in column 0 and
    its closing one likewise, the name on the first signature line.
    """
    lines = code.split('\n')
    owner = [None] * (len(lines) + 2)
    sig = None
    cur = None
    for no, ln in enumerate(lines, 1):
        if ln.startswith('{') and sig:
            s = re.sub(r'__attribute__\s*\(\(.*?\)\)', ' ', sig)
            m = re.search(r'\b([A-Za-z_]\w*)\s*\(', s)
            cur = m.group(1) if m else None
        elif ln.startswith('}'):
            owner[no] = cur
            cur = None
            sig = None
            continue
        elif ln[:1].isalpha() or ln[:1] == '_':
            sig = ln
        owner[no] = cur
    return owner
