//! EQL tokens with byte spans. (Written in the parser change.)
