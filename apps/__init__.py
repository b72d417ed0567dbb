"""The topics of the app, grouped into families (one page each), in display order. Each entry names a
module whose `build_tab()` adds one topic's components to the enclosing `gr.Blocks`. A topic is listed
here only once its tab works; adding a topic is one line below."""

from dataclasses import dataclass

# family slug -> page title, in navigation order; a family with no topic yet is not shown
FAMILIES = {
    "language": "Language",
    "images": "Images",
    "vision": "Vision",
    "representations": "Representations",
    "tabular": "Tabular",
}


@dataclass(frozen=True)
class Topic:
    title: str
    tab_module: str  # a module with build_tab(); it imports no heavy library at module level
    family: str  # a key of FAMILIES

    @property
    def slug(self) -> str:
        """The topic's short name: its package under apps/ (used in links such as /images?topic=diffusion)."""
        return self.tab_module.split(".")[1]

    @property
    def element_id(self) -> str:
        """The HTML id of the tab's panel (for browser tests and custom CSS)."""
        return "tab-" + self.slug


TOPICS = (
    Topic("Text generation", "apps.textgen.tab", "language"),
    Topic("Diffusion", "apps.diffusion.tab", "images"),
    Topic("VQ-VAE and VQGAN", "apps.vqgan.tab", "images"),
    Topic("Flows", "apps.flow.tab", "images"),
    Topic("ViT and MAE", "apps.vit_mae.tab", "vision"),
    Topic("word2vec", "apps.word2vec.tab", "representations"),
    Topic("Boosting", "apps.boosting.tab", "tabular"),
    Topic("Autoregressive models", "apps.autoregressive.tab", "images"),
)
