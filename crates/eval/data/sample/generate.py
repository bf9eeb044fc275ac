#!/usr/bin/env python3
"""Writes the built-in parallel QA sample of multiret-eval (LAReQA format).

The texts below were written for the project (original text, parallel translations sharing
question ids). Each paragraph is given as its list of sentences; each question names its answer
text and the sentence that contains it. The script joins the sentences into the context and
computes `sentence_breaks` and `answer_start` in Unicode code points (Python string indexes),
which is what the LAReQA format uses. Run it from anywhere; it writes LANG.json beside itself.
"""
import json
import os

LANGS = ["de", "en", "es", "fr", "zh"]
JOIN = {"de": " ", "en": " ", "es": " ", "fr": " ", "zh": ""}

# (article id, title per language, sentences per language, questions)
# questions: list of (question id suffix, sentence index, {lang: (question, answer)})
ARTICLES = [
    (
        "bees",
        {"en": "Honeybees", "de": "Honigbienen", "es": "Abejas melíferas", "fr": "Abeilles domestiques", "zh": "蜜蜂"},
        {
            "en": [
                "Honeybees live in colonies that can contain up to sixty thousand workers in summer.",
                "Each colony has a single queen, who lays as many as two thousand eggs a day.",
                "Worker bees tell each other where flowers are by performing a waggle dance.",
                "The angle of the dance shows the direction of the food relative to the sun.",
            ],
            "de": [
                "Honigbienen leben in Völkern, die im Sommer bis zu sechzigtausend Arbeiterinnen umfassen können.",
                "Jedes Volk hat eine einzige Königin, die bis zu zweitausend Eier am Tag legt.",
                "Arbeiterinnen zeigen einander mit einem Schwänzeltanz, wo sich Blüten befinden.",
                "Der Winkel des Tanzes gibt die Richtung der Nahrung im Verhältnis zur Sonne an.",
            ],
            "es": [
                "Las abejas melíferas viven en colonias que pueden albergar hasta sesenta mil obreras en verano.",
                "Cada colonia tiene una sola reina, que pone hasta dos mil huevos al día.",
                "Las obreras se indican unas a otras dónde están las flores mediante una danza del meneo.",
                "El ángulo de la danza muestra la dirección del alimento con respecto al sol.",
            ],
            "fr": [
                "Les abeilles domestiques vivent en colonies qui peuvent compter jusqu'à soixante mille ouvrières en été.",
                "Chaque colonie possède une seule reine, qui pond jusqu'à deux mille œufs par jour.",
                "Les ouvrières s'indiquent l'emplacement des fleurs en exécutant une danse frétillante.",
                "L'angle de la danse montre la direction de la nourriture par rapport au soleil.",
            ],
            "zh": [
                "蜜蜂生活在蜂群中，一个蜂群在夏季最多可以有六万只工蜂。",
                "每个蜂群只有一只蜂王，它每天最多能产两千枚卵。",
                "工蜂通过跳摇摆舞来告诉同伴花朵在哪里。",
                "舞蹈的角度表示食物相对于太阳的方向。",
            ],
        },
        [
            ("1", 0, {
                "en": ("How many workers can a honeybee colony contain in summer?", "up to sixty thousand"),
                "de": ("Wie viele Arbeiterinnen kann ein Bienenvolk im Sommer umfassen?", "bis zu sechzigtausend"),
                "es": ("¿Cuántas obreras puede albergar una colonia de abejas en verano?", "hasta sesenta mil"),
                "fr": ("Combien d'ouvrières une colonie d'abeilles peut-elle compter en été ?", "jusqu'à soixante mille"),
                "zh": ("一个蜂群在夏季最多可以有多少只工蜂？", "六万只"),
            }),
            ("2", 1, {
                "en": ("How many eggs can a queen lay in one day?", "as many as two thousand"),
                "de": ("Wie viele Eier kann eine Königin an einem Tag legen?", "bis zu zweitausend"),
                "es": ("¿Cuántos huevos puede poner una reina en un día?", "hasta dos mil"),
                "fr": ("Combien d'œufs une reine peut-elle pondre en un jour ?", "jusqu'à deux mille"),
                "zh": ("蜂王每天最多能产多少枚卵？", "两千枚"),
            }),
            ("3", 2, {
                "en": ("How do worker bees show each other where flowers are?", "by performing a waggle dance"),
                "de": ("Wie zeigen Arbeiterinnen einander, wo Blüten sind?", "mit einem Schwänzeltanz"),
                "es": ("¿Cómo se indican las obreras dónde están las flores?", "mediante una danza del meneo"),
                "fr": ("Comment les ouvrières s'indiquent-elles l'emplacement des fleurs ?", "en exécutant une danse frétillante"),
                "zh": ("工蜂如何告诉同伴花朵在哪里？", "通过跳摇摆舞"),
            }),
            ("4", 3, {
                "en": ("What does the angle of the waggle dance indicate?", "the direction of the food relative to the sun"),
                "de": ("Was gibt der Winkel des Schwänzeltanzes an?", "die Richtung der Nahrung im Verhältnis zur Sonne"),
                "es": ("¿Qué indica el ángulo de la danza del meneo?", "la dirección del alimento con respecto al sol"),
                "fr": ("Qu'indique l'angle de la danse frétillante ?", "la direction de la nourriture par rapport au soleil"),
                "zh": ("摇摆舞的角度表示什么？", "食物相对于太阳的方向"),
            }),
        ],
    ),
    (
        "rhine",
        {"en": "Rhine", "de": "Rhein", "es": "Rin", "fr": "Rhin", "zh": "莱茵河"},
        {
            "en": [
                "The Rhine rises in the Swiss Alps and flows for about 1,230 kilometres.",
                "On its way it passes through Lake Constance, on the border of Germany, Austria and Switzerland.",
                "Below Basel the river turns north and forms part of the border between France and Germany.",
                "It finally reaches the North Sea in the Netherlands, where it splits into several branches.",
            ],
            "de": [
                "Der Rhein entspringt in den Schweizer Alpen und fließt etwa 1230 Kilometer weit.",
                "Unterwegs durchquert er den Bodensee an der Grenze zwischen Deutschland, Österreich und der Schweiz.",
                "Unterhalb von Basel wendet sich der Fluss nach Norden und bildet einen Teil der Grenze zwischen Frankreich und Deutschland.",
                "Schließlich erreicht er in den Niederlanden die Nordsee, wo er sich in mehrere Arme teilt.",
            ],
            "es": [
                "El Rin nace en los Alpes suizos y recorre unos 1230 kilómetros.",
                "En su camino atraviesa el lago de Constanza, en la frontera entre Alemania, Austria y Suiza.",
                "Aguas abajo de Basilea, el río gira hacia el norte y forma parte de la frontera entre Francia y Alemania.",
                "Finalmente llega al mar del Norte en los Países Bajos, donde se divide en varios brazos.",
            ],
            "fr": [
                "Le Rhin prend sa source dans les Alpes suisses et coule sur environ 1230 kilomètres.",
                "En chemin, il traverse le lac de Constance, à la frontière entre l'Allemagne, l'Autriche et la Suisse.",
                "En aval de Bâle, le fleuve tourne vers le nord et forme une partie de la frontière entre la France et l'Allemagne.",
                "Il atteint enfin la mer du Nord aux Pays-Bas, où il se divise en plusieurs bras.",
            ],
            "zh": [
                "莱茵河发源于瑞士阿尔卑斯山，全长约1230公里。",
                "它在途中流经博登湖，该湖位于德国、奥地利和瑞士三国交界处。",
                "在巴塞尔以下，河流转向北方，构成法国和德国之间的一段边界。",
                "它最终在荷兰注入北海，并在那里分成几条支流。",
            ],
        },
        [
            ("1", 0, {
                "en": ("Where does the Rhine rise?", "in the Swiss Alps"),
                "de": ("Wo entspringt der Rhein?", "in den Schweizer Alpen"),
                "es": ("¿Dónde nace el Rin?", "en los Alpes suizos"),
                "fr": ("Où le Rhin prend-il sa source ?", "dans les Alpes suisses"),
                "zh": ("莱茵河发源于哪里？", "瑞士阿尔卑斯山"),
            }),
            ("2", 1, {
                "en": ("Which lake does the Rhine pass through?", "Lake Constance"),
                "de": ("Welchen See durchquert der Rhein?", "den Bodensee"),
                "es": ("¿Qué lago atraviesa el Rin?", "el lago de Constanza"),
                "fr": ("Quel lac le Rhin traverse-t-il ?", "le lac de Constance"),
                "zh": ("莱茵河流经哪个湖？", "博登湖"),
            }),
            ("3", 2, {
                "en": ("Which border does the Rhine form below Basel?", "between France and Germany"),
                "de": ("Welche Grenze bildet der Rhein unterhalb von Basel?", "zwischen Frankreich und Deutschland"),
                "es": ("¿Qué frontera forma el Rin aguas abajo de Basilea?", "entre Francia y Alemania"),
                "fr": ("Quelle frontière le Rhin forme-t-il en aval de Bâle ?", "entre la France et l'Allemagne"),
                "zh": ("莱茵河在巴塞尔以下构成哪两个国家之间的边界？", "法国和德国"),
            }),
            ("4", 3, {
                "en": ("In which country does the Rhine reach the North Sea?", "the Netherlands"),
                "de": ("In welchem Land erreicht der Rhein die Nordsee?", "in den Niederlanden"),
                "es": ("¿En qué país llega el Rin al mar del Norte?", "en los Países Bajos"),
                "fr": ("Dans quel pays le Rhin atteint-il la mer du Nord ?", "aux Pays-Bas"),
                "zh": ("莱茵河在哪个国家注入北海？", "荷兰"),
            }),
        ],
    ),
    (
        "printing",
        {"en": "Printing press", "de": "Buchdruck", "es": "Imprenta", "fr": "Imprimerie", "zh": "印刷机"},
        {
            "en": [
                "Johannes Gutenberg developed a printing press with movable metal type in Mainz around 1450.",
                "His most famous work is a Latin Bible, of which about 180 copies were printed.",
                "Gutenberg also devised an oil-based ink that stuck well to metal letters.",
                "Within fifty years, print shops had spread to more than two hundred European cities.",
            ],
            "de": [
                "Johannes Gutenberg entwickelte um 1450 in Mainz eine Druckpresse mit beweglichen Metalllettern.",
                "Sein berühmtestes Werk ist eine lateinische Bibel, von der etwa 180 Exemplare gedruckt wurden.",
                "Gutenberg entwickelte außerdem eine Tinte auf Ölbasis, die gut an den Metallbuchstaben haftete.",
                "Innerhalb von fünfzig Jahren gab es Druckereien in mehr als zweihundert europäischen Städten.",
            ],
            "es": [
                "Johannes Gutenberg desarrolló hacia 1450 en Maguncia una imprenta con tipos móviles de metal.",
                "Su obra más famosa es una Biblia en latín, de la que se imprimieron unos 180 ejemplares.",
                "Gutenberg también ideó una tinta a base de aceite que se adhería bien a las letras de metal.",
                "En cincuenta años, las imprentas se habían extendido a más de doscientas ciudades europeas.",
            ],
            "fr": [
                "Vers 1450, à Mayence, Johannes Gutenberg mit au point une presse à imprimer utilisant des caractères mobiles en métal.",
                "Son œuvre la plus célèbre est une Bible latine, dont environ 180 exemplaires furent imprimés.",
                "Gutenberg conçut aussi une encre à base d'huile qui adhérait bien aux lettres métalliques.",
                "En cinquante ans, les imprimeries s'étaient répandues dans plus de deux cents villes européennes.",
            ],
            "zh": [
                "约1450年，约翰内斯·古腾堡在美因茨研制出一种使用金属活字的印刷机。",
                "他最著名的作品是一部拉丁文《圣经》，共印刷了大约180部。",
                "古腾堡还发明了一种能牢牢附着在金属字母上的油性墨水。",
                "五十年内，印刷作坊已经遍布两百多座欧洲城市。",
            ],
        },
        [
            ("1", 0, {
                "en": ("In which city did Gutenberg develop his printing press?", "Mainz"),
                "de": ("In welcher Stadt entwickelte Gutenberg seine Druckpresse?", "Mainz"),
                "es": ("¿En qué ciudad desarrolló Gutenberg su imprenta?", "Maguncia"),
                "fr": ("Dans quelle ville Gutenberg mit-il au point sa presse à imprimer ?", "Mayence"),
                "zh": ("古腾堡在哪座城市研制出印刷机？", "美因茨"),
            }),
            ("2", 1, {
                "en": ("How many copies of Gutenberg's Bible were printed?", "about 180"),
                "de": ("Wie viele Exemplare von Gutenbergs Bibel wurden gedruckt?", "etwa 180"),
                "es": ("¿Cuántos ejemplares de la Biblia de Gutenberg se imprimieron?", "unos 180"),
                "fr": ("Combien d'exemplaires de la Bible de Gutenberg furent imprimés ?", "environ 180"),
                "zh": ("古腾堡《圣经》印刷了多少部？", "大约180部"),
            }),
            ("3", 2, {
                "en": ("What kind of ink did Gutenberg devise?", "an oil-based ink"),
                "de": ("Welche Art von Tinte entwickelte Gutenberg?", "eine Tinte auf Ölbasis"),
                "es": ("¿Qué tipo de tinta ideó Gutenberg?", "una tinta a base de aceite"),
                "fr": ("Quel type d'encre Gutenberg conçut-il ?", "une encre à base d'huile"),
                "zh": ("古腾堡发明了什么样的墨水？", "油性墨水"),
            }),
            ("4", 3, {
                "en": ("How many European cities had print shops within fifty years?", "more than two hundred"),
                "de": ("In wie vielen europäischen Städten gab es innerhalb von fünfzig Jahren Druckereien?", "mehr als zweihundert"),
                "es": ("¿A cuántas ciudades europeas se habían extendido las imprentas en cincuenta años?", "más de doscientas"),
                "fr": ("Dans combien de villes européennes les imprimeries s'étaient-elles répandues en cinquante ans ?", "plus de deux cents"),
                "zh": ("五十年内印刷作坊遍布了多少座欧洲城市？", "两百多座"),
            }),
        ],
    ),
    (
        "moon",
        {"en": "Moon", "de": "Mond", "es": "Luna", "fr": "Lune", "zh": "月球"},
        {
            "en": [
                "The Moon orbits the Earth at an average distance of about 384,400 kilometres.",
                "It takes roughly 27 days to complete one orbit, and it always shows the same face to us.",
                "The first people to walk on its surface arrived with Apollo 11 in July 1969.",
                "Because the Moon has almost no atmosphere, footprints left there can last for millions of years.",
            ],
            "de": [
                "Der Mond umkreist die Erde in einer mittleren Entfernung von etwa 384.400 Kilometern.",
                "Für einen Umlauf braucht er ungefähr 27 Tage, und er zeigt uns immer dieselbe Seite.",
                "Die ersten Menschen, die seine Oberfläche betraten, kamen im Juli 1969 mit Apollo 11.",
                "Da der Mond fast keine Atmosphäre hat, können dort hinterlassene Fußspuren Millionen Jahre überdauern.",
            ],
            "es": [
                "La Luna gira alrededor de la Tierra a una distancia media de unos 384.400 kilómetros.",
                "Tarda aproximadamente 27 días en completar una órbita y siempre nos muestra la misma cara.",
                "Las primeras personas que caminaron sobre su superficie llegaron con el Apolo 11 en julio de 1969.",
                "Como la Luna casi no tiene atmósfera, las huellas que se dejan allí pueden durar millones de años.",
            ],
            "fr": [
                "La Lune tourne autour de la Terre à une distance moyenne d'environ 384 400 kilomètres.",
                "Elle met environ 27 jours à accomplir une orbite et nous montre toujours la même face.",
                "Les premiers humains à marcher sur sa surface sont arrivés avec Apollo 11 en juillet 1969.",
                "Comme la Lune n'a presque pas d'atmosphère, les empreintes de pas laissées là-bas peuvent durer des millions d'années.",
            ],
            "zh": [
                "月球绕地球运行，平均距离约为384400公里。",
                "它大约需要27天绕地球一周，并且始终以同一面朝向我们。",
                "1969年7月，首批在月面行走的人类随阿波罗11号抵达。",
                "由于月球几乎没有大气层，留在那里的脚印可以保存数百万年。",
            ],
        },
        [
            ("1", 0, {
                "en": ("What is the average distance between the Moon and the Earth?", "about 384,400 kilometres"),
                "de": ("Wie groß ist die mittlere Entfernung zwischen Mond und Erde?", "etwa 384.400 Kilometern"),
                "es": ("¿Cuál es la distancia media entre la Luna y la Tierra?", "unos 384.400 kilómetros"),
                "fr": ("Quelle est la distance moyenne entre la Lune et la Terre ?", "environ 384 400 kilomètres"),
                "zh": ("月球与地球的平均距离是多少？", "约为384400公里"),
            }),
            ("2", 1, {
                "en": ("How long does the Moon take to complete one orbit?", "roughly 27 days"),
                "de": ("Wie lange braucht der Mond für einen Umlauf?", "ungefähr 27 Tage"),
                "es": ("¿Cuánto tarda la Luna en completar una órbita?", "aproximadamente 27 días"),
                "fr": ("Combien de temps la Lune met-elle à accomplir une orbite ?", "environ 27 jours"),
                "zh": ("月球绕地球一周大约需要多少天？", "27天"),
            }),
            ("3", 2, {
                "en": ("Which mission brought the first people to the Moon's surface?", "Apollo 11"),
                "de": ("Mit welcher Mission kamen die ersten Menschen auf die Mondoberfläche?", "Apollo 11"),
                "es": ("¿Con qué misión llegaron las primeras personas a la superficie lunar?", "el Apolo 11"),
                "fr": ("Avec quelle mission les premiers humains sont-ils arrivés sur la surface lunaire ?", "Apollo 11"),
                "zh": ("首批在月面行走的人类随哪次任务抵达？", "阿波罗11号"),
            }),
            ("4", 3, {
                "en": ("Why can footprints on the Moon last for millions of years?", "the Moon has almost no atmosphere"),
                "de": ("Warum können Fußspuren auf dem Mond Millionen Jahre überdauern?", "der Mond fast keine Atmosphäre hat"),
                "es": ("¿Por qué las huellas en la Luna pueden durar millones de años?", "la Luna casi no tiene atmósfera"),
                "fr": ("Pourquoi les empreintes de pas sur la Lune peuvent-elles durer des millions d'années ?", "la Lune n'a presque pas d'atmosphère"),
                "zh": ("为什么月球上的脚印可以保存数百万年？", "月球几乎没有大气层"),
            }),
        ],
    ),
    (
        "tea",
        {"en": "Tea", "de": "Tee", "es": "Té", "fr": "Thé", "zh": "茶"},
        {
            "en": [
                "Tea is made from the leaves of Camellia sinensis, a shrub native to East Asia.",
                "Green tea is heated soon after picking, which stops the leaves from oxidising.",
                "Black tea, by contrast, is left to oxidise fully before it is dried.",
                "After water, tea is the most widely consumed drink in the world.",
            ],
            "de": [
                "Tee wird aus den Blättern von Camellia sinensis hergestellt, einem in Ostasien heimischen Strauch.",
                "Grüner Tee wird bald nach dem Pflücken erhitzt, wodurch die Oxidation der Blätter gestoppt wird.",
                "Schwarzen Tee dagegen lässt man vor dem Trocknen vollständig oxidieren.",
                "Nach Wasser ist Tee das meistgetrunkene Getränk der Welt.",
            ],
            "es": [
                "El té se elabora con las hojas de Camellia sinensis, un arbusto originario de Asia oriental.",
                "El té verde se calienta poco después de la cosecha, lo que impide que las hojas se oxiden.",
                "El té negro, en cambio, se deja oxidar por completo antes de secarlo.",
                "Después del agua, el té es la bebida más consumida del mundo.",
            ],
            "fr": [
                "Le thé est préparé à partir des feuilles de Camellia sinensis, un arbuste originaire d'Asie de l'Est.",
                "Le thé vert est chauffé peu après la cueillette, ce qui empêche les feuilles de s'oxyder.",
                "Le thé noir, au contraire, est laissé à oxyder complètement avant d'être séché.",
                "Après l'eau, le thé est la boisson la plus consommée au monde.",
            ],
            "zh": [
                "茶是用茶树的叶子制成的，茶树是一种原产于东亚的灌木。",
                "绿茶在采摘后不久就会被加热，从而阻止叶片氧化。",
                "相比之下，红茶在干燥之前要让它完全氧化。",
                "茶是世界上仅次于水的消费最广泛的饮料。",
            ],
        },
        [
            ("1", 0, {
                "en": ("From which plant is tea made?", "Camellia sinensis"),
                "de": ("Aus welcher Pflanze wird Tee hergestellt?", "Camellia sinensis"),
                "es": ("¿De qué planta se elabora el té?", "Camellia sinensis"),
                "fr": ("À partir de quelle plante le thé est-il préparé ?", "Camellia sinensis"),
                "zh": ("茶是用什么植物的叶子制成的？", "茶树"),
            }),
            ("2", 1, {
                "en": ("What is done to green tea soon after picking?", "heated"),
                "de": ("Was geschieht mit grünem Tee bald nach dem Pflücken?", "erhitzt"),
                "es": ("¿Qué se hace con el té verde poco después de la cosecha?", "se calienta"),
                "fr": ("Que fait-on au thé vert peu après la cueillette ?", "chauffé"),
                "zh": ("绿茶在采摘后不久会经过什么处理？", "加热"),
            }),
            ("3", 2, {
                "en": ("Which tea is left to oxidise fully before drying?", "Black tea"),
                "de": ("Welchen Tee lässt man vor dem Trocknen vollständig oxidieren?", "Schwarzen Tee"),
                "es": ("¿Qué té se deja oxidar por completo antes de secarlo?", "El té negro"),
                "fr": ("Quel thé est laissé à oxyder complètement avant d'être séché ?", "Le thé noir"),
                "zh": ("哪种茶在干燥之前要完全氧化？", "红茶"),
            }),
            ("4", 3, {
                "en": ("Which drink is consumed more widely than tea?", "water"),
                "de": ("Welches Getränk wird häufiger getrunken als Tee?", "Wasser"),
                "es": ("¿Qué bebida se consume más que el té?", "agua"),
                "fr": ("Quelle boisson est plus consommée que le thé ?", "l'eau"),
                "zh": ("哪种饮料的消费比茶更广泛？", "水"),
            }),
        ],
    ),
    (
        "bicycle",
        {"en": "Bicycle", "de": "Fahrrad", "es": "Bicicleta", "fr": "Vélo", "zh": "自行车"},
        {
            "en": [
                "The first two-wheeled running machine was built by Karl Drais in 1817.",
                "It had no pedals, so riders pushed themselves along with their feet.",
                "Pedals attached to the front wheel appeared in France in the 1860s.",
                "Today more than a billion bicycles are thought to be in use around the world.",
            ],
            "de": [
                "Die erste zweirädrige Laufmaschine wurde 1817 von Karl Drais gebaut.",
                "Sie hatte keine Pedale, daher stießen sich die Fahrer mit den Füßen ab.",
                "Am Vorderrad befestigte Pedale kamen in den 1860er-Jahren in Frankreich auf.",
                "Heute sind weltweit vermutlich mehr als eine Milliarde Fahrräder in Gebrauch.",
            ],
            "es": [
                "La primera máquina de correr de dos ruedas fue construida por Karl Drais en 1817.",
                "No tenía pedales, así que los ciclistas se impulsaban con los pies.",
                "Los pedales unidos a la rueda delantera aparecieron en Francia en la década de 1860.",
                "Hoy se calcula que hay más de mil millones de bicicletas en uso en todo el mundo.",
            ],
            "fr": [
                "La première machine à courir à deux roues fut construite par Karl Drais en 1817.",
                "Elle n'avait pas de pédales, si bien que les cyclistes avançaient en poussant avec leurs pieds.",
                "Les pédales fixées à la roue avant apparurent en France dans les années 1860.",
                "Aujourd'hui, on estime que plus d'un milliard de vélos sont utilisés dans le monde.",
            ],
            "zh": [
                "第一辆两轮滑行车由卡尔·德莱斯于1817年制造。",
                "它没有踏板，骑车人只能用脚蹬地前进。",
                "19世纪60年代，装在前轮上的踏板在法国出现。",
                "据估计，如今全世界有超过十亿辆自行车在使用。",
            ],
        },
        [
            ("1", 0, {
                "en": ("Who built the first two-wheeled running machine?", "Karl Drais"),
                "de": ("Wer baute die erste zweirädrige Laufmaschine?", "Karl Drais"),
                "es": ("¿Quién construyó la primera máquina de correr de dos ruedas?", "Karl Drais"),
                "fr": ("Qui construisit la première machine à courir à deux roues ?", "Karl Drais"),
                "zh": ("第一辆两轮滑行车是谁制造的？", "卡尔·德莱斯"),
            }),
            ("2", 1, {
                "en": ("How did riders move the first running machine forward?", "pushed themselves along with their feet"),
                "de": ("Wie bewegten die Fahrer die erste Laufmaschine vorwärts?", "mit den Füßen"),
                "es": ("¿Cómo avanzaban los ciclistas en la primera máquina de correr?", "se impulsaban con los pies"),
                "fr": ("Comment les cyclistes faisaient-ils avancer la première machine à courir ?", "en poussant avec leurs pieds"),
                "zh": ("骑车人如何让第一辆滑行车前进？", "用脚蹬地"),
            }),
            ("3", 2, {
                "en": ("Where did pedals attached to the front wheel appear?", "in France"),
                "de": ("Wo kamen am Vorderrad befestigte Pedale auf?", "in Frankreich"),
                "es": ("¿Dónde aparecieron los pedales unidos a la rueda delantera?", "en Francia"),
                "fr": ("Où apparurent les pédales fixées à la roue avant ?", "en France"),
                "zh": ("装在前轮上的踏板在哪个国家出现？", "法国"),
            }),
            ("4", 3, {
                "en": ("How many bicycles are thought to be in use today?", "more than a billion"),
                "de": ("Wie viele Fahrräder sind heute vermutlich in Gebrauch?", "mehr als eine Milliarde"),
                "es": ("¿Cuántas bicicletas se calcula que hay en uso hoy?", "más de mil millones"),
                "fr": ("Combien de vélos sont utilisés aujourd'hui selon les estimations ?", "plus d'un milliard"),
                "zh": ("如今全世界大约有多少辆自行车在使用？", "超过十亿辆"),
            }),
        ],
    ),
    (
        "vesuvius",
        {"en": "Mount Vesuvius", "de": "Vesuv", "es": "Vesubio", "fr": "Vésuve", "zh": "维苏威火山"},
        {
            "en": [
                "Mount Vesuvius is a volcano on the Bay of Naples in southern Italy.",
                "In the year 79 it erupted and buried the Roman town of Pompeii under ash.",
                "The ash preserved buildings, paintings and even loaves of bread for centuries.",
                "Systematic excavations at Pompeii began in 1748 and continue to this day.",
            ],
            "de": [
                "Der Vesuv ist ein Vulkan am Golf von Neapel in Süditalien.",
                "Im Jahr 79 brach er aus und begrub die römische Stadt Pompeji unter Asche.",
                "Die Asche bewahrte Gebäude, Wandmalereien und sogar Brotlaibe über Jahrhunderte.",
                "Planmäßige Ausgrabungen in Pompeji begannen 1748 und dauern bis heute an.",
            ],
            "es": [
                "El Vesubio es un volcán situado en el golfo de Nápoles, en el sur de Italia.",
                "En el año 79 entró en erupción y sepultó bajo la ceniza la ciudad romana de Pompeya.",
                "La ceniza conservó durante siglos edificios, pinturas e incluso hogazas de pan.",
                "Las excavaciones sistemáticas en Pompeya comenzaron en 1748 y continúan hasta hoy.",
            ],
            "fr": [
                "Le Vésuve est un volcan situé sur la baie de Naples, dans le sud de l'Italie.",
                "En l'an 79, il entra en éruption et ensevelit la ville romaine de Pompéi sous les cendres.",
                "Les cendres ont conservé pendant des siècles des bâtiments, des peintures et même des miches de pain.",
                "Les fouilles systématiques de Pompéi ont commencé en 1748 et se poursuivent encore aujourd'hui.",
            ],
            "zh": [
                "维苏威火山位于意大利南部的那不勒斯湾畔。",
                "公元79年，它爆发并用火山灰掩埋了古罗马城市庞贝。",
                "火山灰使建筑、壁画甚至面包在数百年间得以保存。",
                "庞贝的系统性发掘始于1748年，一直持续到今天。",
            ],
        },
        [
            ("1", 0, {
                "en": ("Where is Mount Vesuvius?", "on the Bay of Naples"),
                "de": ("Wo liegt der Vesuv?", "am Golf von Neapel"),
                "es": ("¿Dónde está el Vesubio?", "en el golfo de Nápoles"),
                "fr": ("Où se trouve le Vésuve ?", "sur la baie de Naples"),
                "zh": ("维苏威火山位于哪里？", "那不勒斯湾畔"),
            }),
            ("2", 1, {
                "en": ("Which Roman town did Vesuvius bury in the year 79?", "Pompeii"),
                "de": ("Welche römische Stadt begrub der Vesuv im Jahr 79?", "Pompeji"),
                "es": ("¿Qué ciudad romana sepultó el Vesubio en el año 79?", "Pompeya"),
                "fr": ("Quelle ville romaine le Vésuve ensevelit-il en l'an 79 ?", "Pompéi"),
                "zh": ("维苏威火山在公元79年掩埋了哪座古罗马城市？", "庞贝"),
            }),
            ("3", 2, {
                "en": ("What did the ash preserve for centuries?", "buildings, paintings and even loaves of bread"),
                "de": ("Was bewahrte die Asche über Jahrhunderte?", "Gebäude, Wandmalereien und sogar Brotlaibe"),
                "es": ("¿Qué conservó la ceniza durante siglos?", "edificios, pinturas e incluso hogazas de pan"),
                "fr": ("Qu'ont conservé les cendres pendant des siècles ?", "des bâtiments, des peintures et même des miches de pain"),
                "zh": ("火山灰保存了哪些东西？", "建筑、壁画甚至面包"),
            }),
            ("4", 3, {
                "en": ("When did systematic excavations at Pompeii begin?", "in 1748"),
                "de": ("Wann begannen planmäßige Ausgrabungen in Pompeji?", "1748"),
                "es": ("¿Cuándo comenzaron las excavaciones sistemáticas en Pompeya?", "en 1748"),
                "fr": ("Quand les fouilles systématiques de Pompéi ont-elles commencé ?", "en 1748"),
                "zh": ("庞贝的系统性发掘始于哪一年？", "1748年"),
            }),
        ],
    ),
    (
        "octopus",
        {"en": "Octopus", "de": "Krake", "es": "Pulpo", "fr": "Pieuvre", "zh": "章鱼"},
        {
            "en": [
                "An octopus has eight arms lined with hundreds of suckers.",
                "It has three hearts, and its blood is blue because it carries oxygen with copper.",
                "Octopuses can change the colour of their skin in a fraction of a second to hide from predators.",
                "Most species live for only one or two years.",
            ],
            "de": [
                "Ein Krake hat acht Arme, die mit Hunderten von Saugnäpfen besetzt sind.",
                "Er hat drei Herzen, und sein Blut ist blau, weil es Sauerstoff mithilfe von Kupfer transportiert.",
                "Kraken können die Farbe ihrer Haut in Sekundenbruchteilen ändern, um sich vor Fressfeinden zu verstecken.",
                "Die meisten Arten leben nur ein oder zwei Jahre.",
            ],
            "es": [
                "Un pulpo tiene ocho brazos cubiertos de cientos de ventosas.",
                "Tiene tres corazones, y su sangre es azul porque transporta el oxígeno con cobre.",
                "Los pulpos pueden cambiar el color de su piel en una fracción de segundo para esconderse de los depredadores.",
                "La mayoría de las especies vive solo uno o dos años.",
            ],
            "fr": [
                "Une pieuvre possède huit bras garnis de centaines de ventouses.",
                "Elle a trois cœurs, et son sang est bleu parce qu'il transporte l'oxygène grâce au cuivre.",
                "Les pieuvres peuvent changer la couleur de leur peau en une fraction de seconde pour se cacher des prédateurs.",
                "La plupart des espèces ne vivent qu'un ou deux ans.",
            ],
            "zh": [
                "章鱼有八条腕，上面布满了数百个吸盘。",
                "它有三颗心脏，血液呈蓝色，因为它依靠铜来运输氧气。",
                "章鱼能在一瞬间改变皮肤的颜色，以躲避捕食者。",
                "大多数种类只能活一到两年。",
            ],
        },
        [
            ("1", 0, {
                "en": ("What lines the arms of an octopus?", "hundreds of suckers"),
                "de": ("Womit sind die Arme eines Kraken besetzt?", "mit Hunderten von Saugnäpfen"),
                "es": ("¿De qué están cubiertos los brazos de un pulpo?", "de cientos de ventosas"),
                "fr": ("De quoi les bras d'une pieuvre sont-ils garnis ?", "de centaines de ventouses"),
                "zh": ("章鱼的腕上布满了什么？", "数百个吸盘"),
            }),
            ("2", 1, {
                "en": ("How many hearts does an octopus have?", "three hearts"),
                "de": ("Wie viele Herzen hat ein Krake?", "drei Herzen"),
                "es": ("¿Cuántos corazones tiene un pulpo?", "tres corazones"),
                "fr": ("Combien de cœurs une pieuvre a-t-elle ?", "trois cœurs"),
                "zh": ("章鱼有几颗心脏？", "三颗心脏"),
            }),
            ("3", 1, {
                "en": ("Why is an octopus's blood blue?", "it carries oxygen with copper"),
                "de": ("Warum ist das Blut eines Kraken blau?", "weil es Sauerstoff mithilfe von Kupfer transportiert"),
                "es": ("¿Por qué la sangre de un pulpo es azul?", "porque transporta el oxígeno con cobre"),
                "fr": ("Pourquoi le sang d'une pieuvre est-il bleu ?", "parce qu'il transporte l'oxygène grâce au cuivre"),
                "zh": ("章鱼的血液为什么呈蓝色？", "依靠铜来运输氧气"),
            }),
            ("4", 2, {
                "en": ("Why do octopuses change the colour of their skin?", "to hide from predators"),
                "de": ("Warum ändern Kraken die Farbe ihrer Haut?", "um sich vor Fressfeinden zu verstecken"),
                "es": ("¿Por qué los pulpos cambian el color de su piel?", "para esconderse de los depredadores"),
                "fr": ("Pourquoi les pieuvres changent-elles la couleur de leur peau ?", "pour se cacher des prédateurs"),
                "zh": ("章鱼为什么要改变皮肤的颜色？", "躲避捕食者"),
            }),
            ("5", 3, {
                "en": ("How long do most octopus species live?", "only one or two years"),
                "de": ("Wie lange leben die meisten Krakenarten?", "nur ein oder zwei Jahre"),
                "es": ("¿Cuánto tiempo vive la mayoría de las especies de pulpo?", "solo uno o dos años"),
                "fr": ("Combien de temps vivent la plupart des espèces de pieuvres ?", "un ou deux ans"),
                "zh": ("大多数章鱼种类能活多久？", "一到两年"),
            }),
        ],
    ),
]


def build(lang):
    data = []
    for art_id, titles, sentences, questions in ARTICLES:
        sents = sentences[lang]
        sep = JOIN[lang]
        context = sep.join(sents)
        breaks = []
        pos = 0
        for i, s in enumerate(sents):
            assert context[pos:pos + len(s)] == s
            breaks.append([pos, pos + len(s)])
            pos += len(s) + len(sep)
        qas = []
        for qid, sidx, per_lang in questions:
            question, answer = per_lang[lang]
            start, end = breaks[sidx]
            off = context[start:end].find(answer)
            assert off >= 0, (lang, art_id, qid, answer)
            qas.append({
                "id": f"sample-{art_id}-{qid}",
                "question": question,
                "answers": [{"answer_start": start + off, "text": answer}],
            })
        data.append({
            "title": titles[lang],
            "paragraphs": [{
                "context": context,
                "qas": qas,
                "sentence_breaks": breaks,
                "sentences": sents,
            }],
        })
    return {"version": "multiret-sample-1.0", "data": data}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for lang in LANGS:
        with open(os.path.join(here, f"{lang}.json"), "w", encoding="utf-8") as f:
            json.dump(build(lang), f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
