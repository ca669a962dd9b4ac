"""The canonical class list (the order of the AN2DL and BloodMNIST label ids) and its aliases."""

from typing import Sequence

CLASS_NAMES: tuple[str, ...] = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "immature_granulocyte",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)

#: Folder names accepted for a class besides its canonical name, its plural and its spellings with
#: spaces or hyphens (each also in its plural, as blood counts write Lymphs, Monos, Neuts): PBC's
#: folder name and file-name prefixes (IG; BA_, EO_, ERB_, LY_, MO_), the short names of other public
#: sets (LISC's Baso, Eosi, Lymp, Mono, Neut) and common short names and synonyms (NEU, PLT, NRBC...).
CLASS_ALIASES: dict[str, str] = {
    "ig": "immature_granulocyte", "igs": "immature_granulocyte",
    "ba": "basophil", "baso": "basophil",
    "eo": "eosinophil", "eos": "eosinophil", "eosi": "eosinophil",
    "erb": "erythroblast", "nrbc": "erythroblast", "nrbcs": "erythroblast",
    "ly": "lymphocyte", "lym": "lymphocyte", "lymp": "lymphocyte", "lymph": "lymphocyte",
    "mo": "monocyte", "mono": "monocyte",
    "neu": "neutrophil", "neut": "neutrophil",
    "plt": "platelet", "thrombocyte": "platelet", "thrombocytes": "platelet",
}


def canonical_name(name: str):
    """The canonical class a folder name stands for (case, plural, spaces and hyphens ignored; and
    :data:`CLASS_ALIASES` and their plurals), or None for another name."""
    key = "_".join(name.lower().replace("-", " ").split())
    if key in CLASS_NAMES:
        return key
    if key.endswith("s") and key[:-1] in CLASS_NAMES:
        return key[:-1]
    return CLASS_ALIASES.get(key) or (CLASS_ALIASES.get(key[:-1]) if key.endswith("s") else None)


def class_path(path: str) -> str:
    """A path relative to a data folder with its class folder under the canonical name (``Eos/x.jpg`` ->
    ``eosinophil/x.jpg``): a copy of the data with other folder names holds the same images."""
    head, sep, rest = path.replace("\\", "/").partition("/")
    return (canonical_name(head) or head) + sep + rest


def same_class(a: str, b: str) -> bool:
    """Whether two class names name one class: equal ignoring case, or aliases of one canonical class."""
    return a.lower() == b.lower() or (canonical_name(a) is not None and canonical_name(a) == canonical_name(b))


def class_index(name: str, names) -> "int | None":
    """The position in ``names`` of the class ``name`` names (:func:`same_class`), or None."""
    return next((i for i, other in enumerate(names) if same_class(name, other)), None)


def class_positions(names, into) -> list[int]:
    """The position in ``into`` of each class of ``names`` (:func:`class_index`), -1 where it has none."""
    return [-1 if i is None else i for i in (class_index(name, into) for name in names)]


def class_changes(old: Sequence[str], new: Sequence[str]) -> dict[str, list[str]]:
    """``new_classes`` and ``dropped_classes`` of an output layer for ``new`` on a model of ``old``
    (matched ignoring case and aliases); empty when the classes are the same."""
    if tuple(old) == tuple(new):
        return {}
    return {"new_classes": [c for c in new if class_index(c, old) is None],
            "dropped_classes": [c for c in old if class_index(c, new) is None]}
