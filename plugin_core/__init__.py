"""What both editor plug-ins (Krita, GIMP) share that is not editor API.

The choices a painter makes (method, preset, size, steps), the engine address, the
words for progress, warnings and errors, the names of result layers, how label
layers are recognised by name, rectangles and RGBA crops, and finding the bundled
protocol. Pure Python (standard library only, relative imports only), so that it
runs inside Krita's and GIMP's own Pythons: `plugin_krita/build_zip.py` and
`plugin_gimp/install.py` bundle it beside a copy of `protocol/`, as the sibling
package it imports the method names from. Each plug-in keeps only the code that
talks to its editor and its UI.
"""


class UserError(ValueError):
    """A problem the painter can fix; str(error) is the whole message to show."""
