"""The topics of the app, in tab order. Each entry names a module whose `build_tab()` adds one tab's
components to the enclosing `gr.Blocks`. A topic is listed here only once its tab works."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    title: str
    tab_module: str  # a module with build_tab()

    @property
    def element_id(self) -> str:
        """The HTML id of the tab's panel (for browser tests and custom CSS)."""
        return "tab-" + self.tab_module.split(".")[1]


TOPICS = (
    Topic("About", "apps.about.tab"),
    Topic("Text generation", "apps.textgen.tab"),
    Topic("word2vec", "apps.word2vec.tab"),
    Topic("Boosting", "apps.boosting.tab"),
    Topic("Diffusion", "apps.diffusion.tab"),
    Topic("ViT and MAE", "apps.vit_mae.tab"),
    Topic("VQ-VAE and VQGAN", "apps.vqgan.tab"),
    Topic("Flows", "apps.flow.tab"),
)
