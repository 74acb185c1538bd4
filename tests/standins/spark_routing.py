"""How GoCD picks a route for a request by its Accept header: Spark 2.9.4's matching, ported line by
line so the GoCD stand-in refuses what GoCD refuses. Not GoCD, not Spark: a port of two methods.

Sources (com.sparkjava:spark-core:2.9.4, the version gocd/gocd 26.1.0 pins in build.gradle:145;
read from its sources jar on Maven Central):
- `spark/route/Routes.java` `findTargetWithGivenAcceptType` (l.224-241): with an Accept header, the
  route whose registered type is `MimeParse.bestMatch(registered types, Accept)`, or none; without
  one, the first route registered for the path.
- `spark/utils/MimeParse.java` `bestMatch` (l.173-189), `fitnessAndQualityParsed` (l.138-164),
  `parseMimeType` (l.47-78), `parseMediaRange` (l.90-98).
- `spark/http/matching/MatcherFilter.java` l.166-177: no route -> 404 with Spark's NOT_FOUND page.

GoCD registers each API route for its versioned media type (`application/vnd.go.cd.vN+json`) and,
for the newest version of each path, once more for `application/vnd.go.cd+json`
(gocd 26.1.0 `api/api-base/.../spring/RerouteLatestApisImpl.java` l.79-104).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NO_MIME_TYPE = ""
LATEST_VERSION_MIMETYPE = "application/vnd.go.cd+json"
"""gocd 26.1.0 `spark/spark-base/.../api/ApiVersion.java`: the unversioned alias of a path's newest version."""


@dataclass
class _Parsed:
    type: str
    sub_type: str
    params: dict[str, str] = field(default_factory=dict)


def _to_float(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        return default


def _parse_mime_type(mime_type: str) -> _Parsed:
    parts = mime_type.split(";")
    params = {}
    for part in parts[1:]:
        sub_parts = part.split("=")
        if len(sub_parts) == 2:
            params[sub_parts[0].strip()] = sub_parts[1].strip()
    full_type = parts[0].strip()
    if full_type == "*":  # Java's URLConnection sends a lone "*"
        full_type = "*/*"
    kind, slash, sub_type = full_type.partition("/")
    return _Parsed(kind, sub_type, params) if slash else _Parsed(full_type, "*", params)


def _parse_media_range(media_range: str) -> _Parsed:
    parsed = _parse_mime_type(media_range)
    q = parsed.params.get("q")
    value = _to_float(q, 1)
    if q is None or not q.strip() or value < 0 or value > 1:
        parsed.params["q"] = "1"
    return parsed


def _fitness_and_quality(mime_type: str, ranges: list[_Parsed]) -> tuple[int, float]:
    best_fitness, best_q = -1, 0.0
    target = _parse_media_range(mime_type)
    for candidate in ranges:
        if ((target.type == candidate.type or candidate.type == "*" or target.type == "*")
                and (target.sub_type == candidate.sub_type or candidate.sub_type == "*" or target.sub_type == "*")):
            for key in target.params:  # always at least "q": the supported type went through parseMediaRange
                param_matches = 1 if (key != "q" and key in candidate.params
                                      and target.params[key] == candidate.params[key]) else 0
                fitness = (100 if candidate.type == target.type else 0)
                fitness += 10 if candidate.sub_type == target.sub_type else 0
                fitness += param_matches
                if fitness > best_fitness:
                    best_fitness, best_q = fitness, _to_float(candidate.params.get("q"), 0)
    return best_fitness, best_q


def best_match(supported: list[str], header: str) -> str:
    """MimeParse.bestMatch: the supported type the header accepts best, or "" for none."""
    ranges = [_parse_media_range(part) for part in header.split(",")]
    weighted = [(*_fitness_and_quality(mime, ranges), index, mime) for index, mime in enumerate(supported)]
    # Collections.sort is stable and compares (fitness, quality) only: among equals the last listed wins.
    weighted.sort(key=lambda w: (w[0], w[1], w[2]))
    fitness, quality, _, mime = weighted[-1]
    return mime if quality != 0 else NO_MIME_TYPE


def pick(registered: list[str], accept: str | None) -> str | None:
    """Routes.findTargetWithGivenAcceptType: which of the media types registered for this method and
    path serves a request with this Accept header (None: Spark finds no route, and answers 404)."""
    if not registered:
        return None
    if accept is None:
        return registered[0]
    # getAcceptedMimeTypes (l.197-207) keeps the first route per type in a HashMap; bestMatch then breaks
    # ties by that map's order, which this port replaces by registration order. Ties only arise for
    # wildcards (`*/*`), between types of one path: the kit never relies on them for a versioned API.
    chosen = best_match(list(dict.fromkeys(registered)), accept)
    return chosen or None


def gocd_media_types(versions: list[int]) -> list[str]:
    """What a GoCD API path answers to: each registered version, and the unversioned alias of the newest."""
    return [f"application/vnd.go.cd.v{v}+json" for v in versions] + [LATEST_VERSION_MIMETYPE]
