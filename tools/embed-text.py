#!/usr/bin/env python3
"""Turns a text file into a C file defining `const char NAME[]` with its exact bytes."""
import sys

name, src, dst = sys.argv[1:4]
data = open(src, 'rb').read()
with open(dst, 'w') as out:
    out.write('/* Generated from %s by tools/embed-text.py. */\n' % src.split('/')[-1])
    out.write('const char %s[] =\n' % name)
    for i in range(0, len(data), 16):
        out.write('        "' + ''.join('\\x%02x' % b for b in data[i:i + 16]) + '"\n')
    out.write('        ;\n')
