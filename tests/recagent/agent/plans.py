# ruff: noqa: E501  (the catalog rows read best one a line)
"""Hand-written plans and a small catalog with list-valued attributes, for the agent tests."""

from __future__ import annotations

import json
from collections.abc import Callable

from recagent.chat.session import ChatSession
from recagent.types import Item

GENRES = ("Comedy", "Drama", "Horror", "Sci-Fi")
ROWS = """
m1|Big|1988|Comedy|Tom Hanks, Elizabeth Perkins|Penny Marshall|A boy wishes to be big and wakes up as a grown man.
m2|Sleepless in Seattle|1993|Comedy|Tom Hanks, Meg Ryan|Nora Ephron|A widower's son calls a radio show to find him a new wife.
m3|Cast Away|2000|Drama|Tom Hanks, Helen Hunt|Robert Zemeckis|A courier is stranded alone on an island after a plane crash.
m4|Philadelphia|1993|Drama|Tom Hanks, Denzel Washington|Jonathan Demme|A lawyer with AIDS sues the firm that fired him.
m5|The Green Mile|1999|Horror|Tom Hanks, Michael Clarke Duncan|Frank Darabont|A death row guard meets an inmate with a healing gift.
m6|Hotel Rwanda|2004|Drama|Don Cheadle, Sophie Okonedo|Terry George|A hotel manager shelters refugees during the genocide.
m7|Ocean's Eleven|2001|Comedy|George Clooney, Don Cheadle|Steven Soderbergh|A gang of thieves plans to rob three casinos at once.
m8|Traffic|2000|Drama|Michael Douglas, Don Cheadle|Steven Soderbergh|The war on drugs seen from a judge, a dealer and the police.
m9|The Shining|1980|Horror|Jack Nicholson, Shelley Duvall|Stanley Kubrick|A writer goes mad in a haunted snowbound hotel.
m10|Alien|1979|Horror|Sigourney Weaver, Tom Skerritt|Ridley Scott|A space crew is hunted by a deadly alien creature.
m11|Aliens|1986|Sci-Fi|Sigourney Weaver, Michael Biehn|James Cameron|Marines fight alien creatures on a distant colony.
m12|Blade Runner|1982|Sci-Fi|Harrison Ford, Rutger Hauer|Ridley Scott|A detective hunts rogue replicants in a rainy future city.
m13|The Martian|2015|Sci-Fi|Matt Damon, Jessica Chastain|Ridley Scott|An astronaut stranded on Mars grows potatoes to survive.
m14|Groundhog Day|1993|Comedy|Bill Murray, Andie MacDowell|Harold Ramis|A weatherman relives the same day again and again.
m15|The Exorcist|1973|Horror|Ellen Burstyn, Max von Sydow|William Friedkin|A priest fights the demon possessing a young girl.
m16|Gravity|2013|Sci-Fi|Sandra Bullock, George Clooney|Alfonso Cuaron|Astronauts adrift in orbit after debris destroys their shuttle.
"""


def movie(row: str) -> Item:
    item_id, title, year, genre, stars, director, plot = row.split("|")
    metadata: dict[str, str | int | float | bool] = {
        "title": title, "year": int(year), "genres": genre,
        "star": "|".join(s.strip() for s in stars.split(",")), "director": director}
    metadata.update({f"genre_{g}": g == genre for g in GENRES})
    return Item(id=item_id, title=f"{title} ({year})",
                text=f"{title} ({year}). {genre}. Starring {stars}. {plot}", metadata=metadata)


def plan(*steps: dict[str, object]) -> str:
    return json.dumps({"steps": list(steps)})


def step(tool: str, **args: object) -> dict[str, object]:
    return {"tool": tool, "args": args}


Make = Callable[..., ChatSession]
