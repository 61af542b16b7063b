"""``StoryCLI``: the project's LightningCLI without the classifier links (Lab 3 has no classes)."""

from common.cli import LabCLI


class StoryCLI(LabCLI):
    link_data_to_model = False
