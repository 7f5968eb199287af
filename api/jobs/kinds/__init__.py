"""The registry of job kinds."""
from api.jobs.kinds.base import JobKind
from api.jobs.kinds.curate import CurateKind
from api.jobs.kinds.decontaminate import DecontaminateKind
from api.jobs.kinds.embed import EmbedKind
from api.jobs.kinds.modeling import FitKind, MixtureKind
from api.jobs.kinds.ot import OTKind
from api.jobs.kinds.pilots import PilotsKind
from api.jobs.kinds.selection import BetrKind, IndexKind, PruneKind

KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (EmbedKind(), IndexKind(), PruneKind(), BetrKind(), OTKind(), FitKind(), MixtureKind(),
                 CurateKind(), DecontaminateKind(), PilotsKind())
}

__all__ = ["KINDS", "JobKind"]
