"""The registry of job kinds."""
from api.jobs.kinds.base import JobKind, Stage
from api.jobs.kinds.embed import EmbedKind
from api.jobs.kinds.ot import OTKind

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (EmbedKind(), OTKind())}

__all__ = ["KINDS", "JobKind", "Stage"]
