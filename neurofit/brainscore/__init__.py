"""Brain-Score interoperability: its models as neurofit features, neurofit models as Brain-Score plugins.

* :func:`activations_from_brain_model`: any Brain-Score ``BrainModel``-style object (``start_recording(region,
  time_bins)`` and ``look_at(stimuli)`` returning a ``presentation x neuroid x time_bin`` assembly) shown a
  neurofit :class:`~neurofit.data.stimuli.StimulusSet`, as an ActivationSet with one "layer" per region and one
  step per time bin, ready for :func:`neurofit.score`.
* :class:`ExternalBrainModel`: a Brain-Score model in another Python environment (Brain-Score's pins keep it
  out of neurofit's), driven there by a subprocess; it offers the same interface here.
* :func:`activations_from_assembly`: the same from an assembly a Brain-Score model already returned (an
  xarray object or a NetCDF file written by Brain-Score's ``write_netcdf``).
* :func:`export_plugin`: a Brain-Score model plugin folder for a neurofit model (``neurofit export
  brainscore``), self-contained (plain torch + safetensors) because neurofit cannot be installed beside
  Brain-Score's pinned xarray.

Brain-Score assemblies and stimulus sets (``.nc`` + ``.csv`` + ``.zip``) convert with
:func:`neurofit.data.loaders.brainio.convert_brainio`.
"""

from __future__ import annotations

from neurofit._lazy import lazy_exports

# resolved on first use, so that `neurofit export --help` imports neither torch nor xarray
_PUBLIC = {
    "ExternalBrainModel": "neurofit.brainscore.model",
    "activations_from_assembly": "neurofit.brainscore.model",
    "activations_from_brain_model": "neurofit.brainscore.model",
    "is_brain_model": "neurofit.brainscore.model",
    "export_plugin": "neurofit.brainscore.plugin",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = sorted(_PUBLIC)
