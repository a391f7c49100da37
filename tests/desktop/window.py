"""A real X window for the desktop tests: a focused Tk text box whose content (and the keys it gets)
are mirrored to files ten times a second, so a test can see what was typed into it.

    python tests/desktop/window.py CONTENT_FILE KEYS_FILE
"""

from __future__ import annotations

import sys
import tkinter as tk
from pathlib import Path


def main() -> None:
    content_file, keys_file = Path(sys.argv[1]), Path(sys.argv[2])
    root = tk.Tk()
    root.title("assistant desktop test")
    text = tk.Text(root, width=60, height=10)
    text.pack()
    keys: list[str] = []
    text.bind("<Key>", lambda e: keys.append(e.keysym))

    def mirror() -> None:
        text.focus_force()  # no window manager on Xvfb: keep the keyboard focus here
        content_file.write_text(text.get("1.0", "end-1c"), encoding="utf-8")
        keys_file.write_text("\n".join(keys), encoding="utf-8")
        root.after(100, mirror)

    root.after(100, mirror)
    root.mainloop()


if __name__ == "__main__":
    main()
