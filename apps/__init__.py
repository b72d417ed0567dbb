"""The topics of the app, grouped into families (one page each), in display order. Each entry names a
module whose `build_tab()` adds one topic's components to the enclosing `gr.Blocks`, and whose
`API_EXAMPLES` (api_name -> valid arguments, the first entry being the topic's main action unless the
module sets `MAIN_ACTION`) and `BROWSER_CHECK` the tests and the app benchmark use. A topic is listed
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

    @property
    def link(self) -> str:
        """The address that opens the topic: its family's page with the topic's tab selected."""
        return f"/{self.family}?topic={self.slug}"


TOPICS = (
    Topic("Text generation", "apps.textgen.tab", "language"),
    Topic("State-space models", "apps.ssm.tab", "language"),
    Topic("Masked language models", "apps.mlm.tab", "language"),
    Topic("Diffusion", "apps.diffusion.tab", "images"),
    Topic("VQ-VAE and VQGAN", "apps.vqgan.tab", "images"),
    Topic("Flows", "apps.flow.tab", "images"),
    Topic("Autoregressive models", "apps.autoregressive.tab", "images"),
    Topic("VAE and GAN", "apps.vae_gan.tab", "images"),
    Topic("ViT and MAE", "apps.vit_mae.tab", "vision"),
    Topic("word2vec", "apps.word2vec.tab", "representations"),
    Topic("Metric learning", "apps.metric.tab", "representations"),
    Topic("Boosting", "apps.boosting.tab", "tabular"),
)


def topics_by_family() -> dict[str, list[Topic]]:
    """Family slug -> its topics, in navigation order; families without a topic are left out."""
    grouped = {family: [topic for topic in TOPICS if topic.family == family] for family in FAMILIES}
    return {family: topics for family, topics in grouped.items() if topics}
