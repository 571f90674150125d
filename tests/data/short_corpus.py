"""Short-form English and Chinese texts (headlines, poems, dialogue, Q&A) for the `short` profile.

The poems are classical (Tang dynasty, public domain) or written for this test; the rest
was written for this test.
"""

SHORT_DOCS = [
    # English headlines
    "Central bank holds interest rates steady as inflation cools",
    "City council approves new bike lanes along the river front",
    "Scientists map the genome of an ancient wheat variety",
    "Heavy snow closes mountain passes for a second day",
    "Local library extends opening hours during exam season",
    # English Q&A
    "Q: How long should bread dough rise?\nA: Usually until it doubles in size, about an hour.",
    "Q: Why is the sky blue?\nA: Air scatters blue light more than red light.",
    "Q: What does a compiler do?\nA: It translates source code into machine code.",
    # English dialogue
    '"Are you coming to the market tomorrow?"\n'
    '"Only if it stops raining."\n"Then bring an umbrella."',
    '"Did you water the plants?"\n"Yes, twice."\n"Good, they looked thirsty."',
    # English short poems (written for this test)
    "Morning fog upon the lake,\nA heron waits for the light to break.\n"
    "The reeds are still, the water grey,\nAnd slowly night gives way to day.",
    "Leaves are falling, red and gold,\nThe evenings quiet, the mornings cold.\n"
    "We gather wood and light the fire,\nAnd watch the sparks climb ever higher.",
    # Chinese classical poems (public domain)
    "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
    "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。",
    "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。",
    "千山鸟飞绝，万径人踪灭。\n孤舟蓑笠翁，独钓寒江雪。",
    "红豆生南国，春来发几枝。\n愿君多采撷，此物最相思。",
    # Chinese headlines
    "多地迎来入冬以来首场降雪，交通部门提醒注意出行安全",
    "国内首条跨海高铁完成联调联试，预计年底开通运营",
    "图书馆延长考试周开放时间，方便学生自习",
    # Chinese Q&A and dialogue
    "问：面团需要发酵多久？\n答：一般发到原来的两倍大，大约一个小时。",
    "问：为什么天空是蓝色的？\n答：因为空气对蓝光的散射比红光更强。",
    "“明天去集市吗？”\n“雨停了就去。”\n“那记得带伞。”",
    "“花浇过水了吗？”\n“浇了两次。”\n“那就好，它们看起来很渴。”",
]
